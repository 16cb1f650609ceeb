"""Every state-changing route (POST/PUT/PATCH/DELETE, web or API) is in the hostile-input
matrix (``matrix.ENTRY_POINTS``) or exempt here with a reason. A new route fails this test until
it gets a row in one of the two tables."""

from __future__ import annotations

from flask import Flask

from tests.hostile.matrix import ENTRY_POINTS

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}

# (endpoint, method) -> why it has no row in the matrix.
EXEMPT: dict[tuple[str, str], str] = {
    ("security.login", "POST"): "Flask-Security's form; nothing is stored from it "
                                "(failures and lock-out: test_auth, test_rate_limit)",
    ("security.logout", "POST"): "no input",
    ("security.verify", "POST"): "password re-entry only; nothing stored (Flask-Security)",
    ("security.change_password", "POST"): "Flask-Security's form; the password is hashed, "
                                          "never shown",
    ("account.revoke_token", "POST"): "no body; the id is an <int:> path converter",
    ("admin.set_active", "POST"): "a toggle: any value but '1' deactivates; id is <int:>",
    ("admin.sites", "POST"): "a toggle and an integer id (unknown ids are 404)",
    ("cases.verify", "POST"): "no body; ids are <int:> path converters",
    ("cases.remove_attachment", "POST"): "no body; ids are <int:> path converters",
    ("cases.notifications", "POST"): "no body (marks notifications read)",
    ("envelopes.new_draft", "POST"): "one choice ('approved' copies; anything else: empty)",
    ("envelopes.approve", "POST"): "password re-entry only (api.approve_envelope covers it)",
    ("api_tokens.revoke_token", "DELETE"): "no body; the id is an <int:> path converter",
    ("api_cases.remove_attachment", "DELETE"): "no body; ids are <int:> path converters",
    ("api_cases.verify_iteration", "POST"): "no body; ids are <int:> path converters",
    ("admin.unlock", "POST"): "no body; the id is an <int:> path converter",
    ("cases.assign", "POST"): "one integer id (unknown or non-engineer ids are refused)",
    ("api_cases.assign", "POST"): "one integer id (unknown or non-engineer ids are refused)",
    ("cases.export_package", "POST"): "no body; the id is an <int:> path converter",
    ("api_packages.export_case", "POST"): "no body; the id is an <int:> path converter",
    ("api_packages.export_cases", "POST"): "a list of integer ids (schema-validated)",
    # Flask-Security's two-factor forms take only codes; nothing is stored or shown from them
    # (wrong, replayed and locked-out codes: tests/functional/test_mfa.py).
    ("security.mf_recovery", "POST"): "a recovery code only (test_mfa)",
    ("security.mf_recovery_codes", "POST"): "no free input (test_mfa)",
    ("security.tf_select", "POST"): "one choice among the enabled methods",
    ("security.two_factor_rescue", "POST"): "one choice; e-mail rescue is disabled",
    ("security.two_factor_setup", "POST"): "one choice of method (test_mfa)",
    ("security.two_factor_setup_validate", "POST"): "a code only (test_mfa)",
    ("security.two_factor_token_validation", "POST"): "a code only (test_mfa)",
}


def _state_changing_routes(app: Flask) -> set[tuple[str, str]]:
    return {(rule.endpoint, method) for rule in app.url_map.iter_rules()
            for method in (rule.methods or set()) & STATE_CHANGING}


def test_every_state_changing_route_is_in_the_matrix_or_exempt(app: Flask) -> None:
    routes = _state_changing_routes(app)
    covered = {(e.endpoint, e.method) for e in ENTRY_POINTS}
    missing = routes - covered - set(EXEMPT)
    assert not missing, ("state-changing routes with no hostile-input row (add one to "
                         f"tests/hostile/matrix.py ENTRY_POINTS, or to EXEMPT with a reason): "
                         f"{sorted(missing)}")
    stale = (covered | set(EXEMPT)) - routes
    assert not stale, f"matrix rows or exemptions for routes that do not exist: {sorted(stale)}"
    assert not covered & set(EXEMPT), "a route is both in the matrix and exempt"
    assert all(len(reason) > 5 for reason in EXEMPT.values())
