"""Market supervision: quality notifications, regulator actions, risk classes, inspection plans, indicators."""
