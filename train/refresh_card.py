"""Re-measure the shipped model's card on the runtime as it is now, weights unchanged.

    python -m tfkt_edge.train.refresh_card --version 0.4.2 --note "..." [--ladders /tmp/ladders] [--own-ladders /tmp/own]

For a change of the verdict around an unchanged network (model 0.4.1: the noise bound on the score,
`tfkt_edge.verdict.bound`): writes the card's ``score_bound`` and ``checks``, re-runs the held-out series
figures (`validate.series_figures`) and the LDCTIQAC protocol re-creation (`recreation`) through the
runtime (the ladders' doses of the routine dose, and of each original's own dose beside them), and writes
the card into the ONNX file's metadata, beside it as JSON, and docs/heldout_real.md.
The weights are copied bit for bit (the refreshed file's initializers are checked equal to the old ones).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import onnx

from tfkt_edge.model.model_file import CARD_KEY, DEFAULT_MODEL
from tfkt_edge.train.ctnoise import D_HALF, SHAPE
from tfkt_edge.train.make_default import CHECKS
from tfkt_edge.verdict.bound import ScoreBound


def write_card(path: Path, card: dict) -> None:
    """Replace the card in ``path``'s metadata; everything else in the file is kept as it was."""
    model = onnx.load(str(path))
    before = {t.name: t.raw_data for t in model.graph.initializer}
    entries = {p.key: p.value for p in model.metadata_props}
    entries[CARD_KEY] = json.dumps(card)
    del model.metadata_props[:]
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    after = {t.name: t.raw_data for t in onnx.load(str(path)).graph.initializer}
    if after != before:
        raise RuntimeError(f"{path}: the weights changed while the card was written")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--version", required=True, help="the card's new version")
    parser.add_argument("--note", required=True, help="what changed, for the card's history")
    parser.add_argument("--ladders", type=Path, default=None, help="reuse (or write) the held-out ladders here")
    parser.add_argument("--own-ladders", type=Path, default=None,
                        help="reuse (or write) the held-out ladders with doses of each original's own dose here")
    args = parser.parse_args(argv)
    card_path = args.model.with_suffix(".card.json")
    card = json.loads(card_path.read_text())
    card["history"] = [*card.get("history", []), {"version": card.get("version", ""), "became": args.version,
                                                  "note": args.note}]
    card["version"] = args.version
    card["score_bound"] = ScoreBound(D_HALF, SHAPE).to_dict()
    card["checks"] = CHECKS
    write_card(args.model, card)  # the figures below are measured through the runtime, which reads the card

    from tfkt_edge.train.recreation import run as recreate
    from tfkt_edge.train.validate import markdown_report, series_figures

    card["heldout_series"] = series_figures(args.model, args.ladders)
    card["heldout_series_own_dose"] = series_figures(args.model, args.own_ladders, reference="own")["summary"]["all"]
    recreation = recreate(args.model, "heldout", progress=lambda name: print(f"  recreation {name}", flush=True))
    card["recreation"] = {k: v for k, v in recreation.items() if k != "rows"}
    step = f"python -m tfkt_edge.train.refresh_card --version {args.version} --note '...'"
    if step not in str(card.get("reproduce", "")):
        card["reproduce"] = f"{card.get('reproduce', '')}; then {step}".lstrip("; ")
    write_card(args.model, card)
    twin = args.model.with_name(f"{args.model.stem}_stored.onnx")  # the stored-input twin carries the same card
    if twin.is_file():
        write_card(twin, card)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    if args.model.resolve() == DEFAULT_MODEL.resolve():
        (Path(__file__).resolve().parents[1] / "docs" / "heldout_real.md").write_text(markdown_report(card))
    print(json.dumps(card["heldout_series"]["summary"]["all"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
