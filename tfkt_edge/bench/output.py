"""A benchmark result as a rich table, Markdown and a PNG plot of slices/s against batch size."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

COLUMNS = ("backend", "model", "mode", "precision", "batch", "slices/s", "min-max", "p50 ms", "p95 ms", "p99 ms", "h2d ms")


def _cells(row: dict) -> list[str]:
    if "skipped" in row:
        return [row["backend"], row["model"], row["mode"], row.get("precision", ""), str(row.get("batch_size") or ""),
                "skipped: " + row["skipped"], "", "", "", "", ""]

    def ms(key: str) -> str:
        return "" if row.get(key) is None else f"{row[key]:.2f}"

    return [row["backend"], row["model"], row["mode"], row.get("precision", ""), str(row.get("batch_size") or "-"),
            f"{row['slices_per_s']:.1f}", f"{row['min_slices_per_s']:.1f}-{row['max_slices_per_s']:.1f}",
            ms("p50_ms"), ms("p95_ms"), ms("p99_ms"), ms("h2d_ms")]


LATENCY = ("latency: model-only, one batch; end to end, one inference call (a batch) inside the pipeline; "
           "decode-only, one slice's decode and preprocessing")


def _shown_columns(result: dict) -> list[int]:
    """The columns with something to show: an all-empty one (h2d on a machine without a GPU) is left out."""
    cells = [_cells(row) for row in result["rows"]]
    return [i for i, name in enumerate(COLUMNS) if name != "h2d ms" or any(c[i] for c in cells)]


def notes(result: dict) -> list[str]:
    """What the table's figures are: latency units, the end-to-end input, peak memory."""
    out = [LATENCY]
    if result.get("model_input"):
        out.append(f"model input: {result['model_input']}")
    if result.get("end_to_end_input"):
        out.append(f"end-to-end input: {result['end_to_end_input']}")
    if result.get("peak_rss_mb") is not None:
        out.append(f"peak resident memory of the run: {result['peak_rss_mb']} MB")
    return out


def table(result: dict) -> Table:
    machine = result["machine"]
    gpu = f", {machine['gpu']}" if "gpu" in machine else ""
    out = Table(title=f"tfkt-edge benchmark on {machine['cpu']} ({machine['cores']} cores{gpu})",
                caption="\n".join(notes(result)))
    shown = _shown_columns(result)
    for i in shown:
        name = COLUMNS[i]
        out.add_column(name, justify="right" if name not in ("backend", "model", "mode", "precision") else "left",
                       overflow="fold")
    for row in result["rows"]:
        cells = _cells(row)
        out.add_row(*(escape(cells[i]) for i in shown))
    return out


def markdown(result: dict) -> str:
    machine = result["machine"]
    libraries = ", ".join(f"{k} {v}" for k, v in machine.get("libraries", {}).items())
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores"
             + (f", {machine['gpu']} (driver {machine.get('driver', '?')})" if "gpu" in machine else ", no GPU")
             + f"; Python {machine['python']}; {libraries}.", "",
             f"Command: `{result['command']}`.", "", *[f"- {line}" for line in notes(result)], ""]
    shown = _shown_columns(result)
    lines += ["| " + " | ".join(COLUMNS[i] for i in shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_cells(row)[i] for i in shown) + " |" for row in result["rows"]]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path:
    """Model-only slices/s by batch size, one line per backend, model and precision (log scale)."""
    from tfkt_edge.render.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    series: dict[tuple, list[tuple[int, float]]] = {}
    for row in result["rows"]:
        if row["mode"] == "model-only" and "slices_per_s" in row:
            series.setdefault((row["backend"], row["model"], row["precision"]), []).append(
                (row["batch_size"], row["slices_per_s"]))
    for (backend, model, precision), points in sorted(series.items()):
        points.sort()
        ax.plot([b for b, _ in points], [r for _, r in points], marker="o",
                linestyle="--" if model == "tfkt_v2" else "-", label=f"{model} / {backend} {precision}")
    ax.set_xscale("log", base=2)
    sizes = sorted({b for points in series.values() for b, _ in points})
    if sizes:
        ax.set_xticks(sizes, [str(b) for b in sizes])
        ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("slices/s (model only)")
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    ax.set_title(f"{result['machine']['cpu']}" + (f" + {result['machine']['gpu']}" if "gpu" in result["machine"] else ""),
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
