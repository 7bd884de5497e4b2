"""PNG plots of a run (matplotlib, headless): loss against step and wallclock, bpb per eval method,
artifact bytes per tensor group against the budget."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pgolf.io import atomic_write  # noqa: E402
from pgolf.rundir import METRICS_FILE  # noqa: E402


def save_png(fig, out: Path, dpi: int) -> None:
    """The figure as PNG under a temporary name, renamed when whole (as every file pgolf writes)."""
    atomic_write(Path(out), lambda f: fig.savefig(f, format="png", dpi=dpi))


def read_metrics(run_dir: Path) -> list[dict]:
    f = Path(run_dir) / METRICS_FILE
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.is_file() else []


def plot_losses(run_dir: Path, out: Path) -> Path:
    rows = read_metrics(run_dir)
    train = [r for r in rows if r["kind"] == "train"]
    val = [r for r in rows if r["kind"] == "val"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((axes[0], "step", "step"), (axes[1], "train_time_ms", "training wallclock (s)")):
        scale = 1000.0 if key == "train_time_ms" else 1.0
        ax.plot([r[key] / scale for r in train], [r["train_loss"] for r in train], label="train loss", lw=1)
        if val:
            ax.plot([r[key] / scale for r in val], [r["val_loss"] for r in val], "o-", label="val loss")
        ax.set_xlabel(label)
        ax.set_ylabel("nats / token")
        ax.grid(alpha=0.3)
        ax.legend()
    name = Path(run_dir).name if Path(run_dir).name != "run" else Path(run_dir).parent.name
    fig.suptitle(f"loss — {name}")
    fig.tight_layout()
    save_png(fig, out, 110)
    plt.close(fig)
    return out


def plot_eval_methods(bpb_by_method: dict[str, float], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(bpb_by_method)))
    names = list(bpb_by_method)
    ax.barh(names, [bpb_by_method[n] for n in names], color="#4477aa")
    lo = min(bpb_by_method.values())
    ax.set_xlim(lo * 0.97, max(bpb_by_method.values()) * 1.01)
    for i, n in enumerate(names):
        ax.text(bpb_by_method[n], i, f" {bpb_by_method[n]:.4f}", va="center", fontsize=8)
    ax.set_xlabel("val bpb (lower is better)")
    fig.tight_layout()
    save_png(fig, out, 110)
    plt.close(fig)
    return out


def plot_bytes(groups: dict[str, int], code_bytes: int, budget: int, out: Path) -> Path:
    """Raw (pre-compression) bytes per tensor group, plus code, against the budget."""
    items = sorted(groups.items(), key=lambda kv: -kv[1]) + [("code", code_bytes)]
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.4 * len(items)))
    ax.barh([k for k, _ in items], [v / 1e6 for _, v in items], color="#cc6677")
    ax.axvline(budget / 1e6, color="k", ls="--", label=f"budget {budget / 1e6:g} MB")
    ax.set_xlabel("MB (tensor groups before compression)")
    ax.legend()
    fig.tight_layout()
    save_png(fig, out, 110)
    plt.close(fig)
    return out
