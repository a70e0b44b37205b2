"""Parts-first boards: the parts catalog (data files) and the board planner.

A board is planned before anything is drawn (which parts, how many, where), so
its part count is exact and its callouts come from the plan. Names are imported
on first use."""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".catalog": "CatalogError CatalogObject CatalogPart load_catalog find_object resolve_object",
        ".plan": "BoardPlan PlacedPart plan_board",
        ".cutout": "cut_out CutoutRejected",
        ".compose": "compose_board",
        ".check": "check_board BoardCheck",
    },
)
