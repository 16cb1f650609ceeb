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
