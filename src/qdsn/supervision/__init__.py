"""Market supervision: quality notifications, regulator actions, risk classes, inspections, indicators."""
