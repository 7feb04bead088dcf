"""Words the console shows from data (roles, kinds, states) rather than from a template's text: listed
here so that `pybabel extract -k N_` finds them for the catalogs."""


def N_(message: str) -> str:
    return message


WORDS = [
    N_("enterprise"), N_("certifier"), N_("regulator"),
    N_("viewer"), N_("engineer"), N_("approver"),
    N_("measurements"), N_("inspections"), N_("nonconformances"), N_("corrective_actions"), N_("compliance"),
    N_("pending"), N_("approved"), N_("denied"), N_("done"), N_("failed"), N_("running"),
    N_("valid"), N_("suspended"), N_("invalid"),
    N_("wrong name or password"),
]  # fmt: skip
