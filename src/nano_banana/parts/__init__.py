"""Parts-first boards: the parts catalog (data files) and the board planner.

A board is planned before anything is drawn (which parts, how many, where), so
its part count is exact and its callouts come from the plan. Names are imported
on first use."""

from ..lazy import lazy_exports

_EXPORTS = {
    "CatalogError": ".catalog",
    "CatalogObject": ".catalog",
    "CatalogPart": ".catalog",
    "load_catalog": ".catalog",
    "find_object": ".catalog",
    "resolve_object": ".catalog",
    "BoardPlan": ".plan",
    "PlacedPart": ".plan",
    "plan_board": ".plan",
    "cut_out": ".cutout",
    "CutoutRejected": ".cutout",
    "compose_board": ".compose",
    "check_board": ".check",
    "BoardCheck": ".check",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
