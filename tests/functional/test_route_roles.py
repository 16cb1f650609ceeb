"""The route × role table (21 CFR Part 11 §11.10(d), (g): access limited to authorised people).

The table below is written out by hand. The test fails when a route is missing from it, when a
route does not declare its permission, and when any role reaches a route it should not (or is
refused one it should reach), through the real login and bearer-token paths.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask

from pdm_records.access import LIBRARY_ENDPOINTS, endpoint_permission
from pdm_records.permissions import permissions_for
from tests.conftest import Accounts

ANON, CLIN, ENG, QUAL, ADMIN = "anonymous", "clinician", "engineer", "quality", "admin"
EVERYONE = frozenset({ANON, CLIN, ENG, QUAL, ADMIN})
SIGNED_IN = frozenset({CLIN, ENG, QUAL, ADMIN})
CASE_ROLES = frozenset({CLIN, ENG, QUAL})

# (endpoint, method) -> who may reach it. Literal on purpose: change it deliberately.
ROUTE_ROLE_TABLE: dict[tuple[str, str], frozenset[str]] = {
    ("static", "GET"): EVERYONE,
    ("security.static", "GET"): EVERYONE,
    ("security.login", "GET"): EVERYONE,
    ("security.login", "POST"): EVERYONE,
    ("security.logout", "POST"): EVERYONE,
    ("security.verify", "GET"): SIGNED_IN,
    ("security.verify", "POST"): SIGNED_IN,
    ("security.change_password", "GET"): SIGNED_IN,
    ("security.change_password", "POST"): SIGNED_IN,
    ("security.two_factor_setup", "GET"): EVERYONE,
    ("security.two_factor_setup", "POST"): EVERYONE,
    ("security.two_factor_token_validation", "GET"): EVERYONE,
    ("security.two_factor_token_validation", "POST"): EVERYONE,
    ("security.two_factor_rescue", "GET"): EVERYONE,
    ("security.two_factor_rescue", "POST"): EVERYONE,
    ("security.tf_select", "GET"): EVERYONE,
    ("security.tf_select", "POST"): EVERYONE,
    ("security.mf_recovery", "GET"): EVERYONE,
    ("security.mf_recovery", "POST"): EVERYONE,
    ("security.two_factor_setup_validate", "POST"): SIGNED_IN,
    ("security.mf_recovery_codes", "GET"): SIGNED_IN,
    ("security.mf_recovery_codes", "POST"): SIGNED_IN,
    ("main.index", "GET"): EVERYONE,
    ("main.dashboard", "GET"): SIGNED_IN,
    ("account.profile", "GET"): SIGNED_IN,
    ("account.tokens", "GET"): SIGNED_IN,
    ("account.tokens", "POST"): SIGNED_IN,
    ("account.revoke_token", "POST"): SIGNED_IN,
    ("admin.users", "GET"): frozenset({ADMIN}),
    ("admin.new_user", "GET"): frozenset({ADMIN}),
    ("admin.new_user", "POST"): frozenset({ADMIN}),
    ("admin.set_active", "POST"): frozenset({ADMIN}),
    ("admin.unlock", "POST"): frozenset({ADMIN}),
    ("admin.reset_mfa", "POST"): frozenset({ADMIN}),
    ("admin.configuration", "GET"): frozenset({ADMIN}),
    ("admin.sites", "GET"): frozenset({QUAL, ADMIN}),
    ("admin.sites", "POST"): frozenset({QUAL, ADMIN}),
    ("admin.storage_integrity", "GET"): frozenset({QUAL, ADMIN}),
    ("cases.index", "GET"): CASE_ROLES,
    ("cases.choose_device_type", "GET"): frozenset({CLIN}),
    ("cases.new", "GET"): frozenset({CLIN}),
    ("cases.new", "POST"): frozenset({CLIN}),
    ("cases.detail", "GET"): CASE_ROLES,
    ("cases.edit", "GET"): frozenset({CLIN}),
    ("cases.edit", "POST"): frozenset({CLIN}),
    ("cases.upload", "POST"): frozenset({CLIN}),
    ("cases.upload_iteration", "POST"): frozenset({ENG}),
    ("cases.verify", "POST"): frozenset({ENG}),
    ("cases.confirm", "POST"): frozenset({ENG}),
    ("cases.remove_attachment", "POST"): frozenset({CLIN}),
    ("cases.download", "GET"): CASE_ROLES,
    ("cases.export_package", "POST"): frozenset({QUAL}),
    ("cases.transition", "POST"): CASE_ROLES,
    ("cases.comment", "POST"): CASE_ROLES,
    ("cases.assign", "POST"): frozenset({QUAL}),
    ("api_cases.assign", "POST"): frozenset({QUAL}),
    ("cases.notifications", "GET"): SIGNED_IN,
    ("records.search", "GET"): frozenset({QUAL}),
    ("records.dossier", "GET"): frozenset({QUAL}),
    ("previews.iteration", "GET"): CASE_ROLES,
    ("previews.glb", "GET"): CASE_ROLES,
    ("previews.legend", "GET"): CASE_ROLES,
    ("cases.notifications", "POST"): SIGNED_IN,
    ("envelopes.index", "GET"): CASE_ROLES,
    ("envelopes.view", "GET"): CASE_ROLES,
    ("envelopes.download", "GET"): CASE_ROLES,
    ("envelopes.new_draft", "POST"): frozenset({QUAL}),
    ("envelopes.edit", "GET"): frozenset({QUAL}),
    ("envelopes.edit", "POST"): frozenset({QUAL}),
    ("envelopes.approve", "POST"): frozenset({QUAL}),
    ("envelopes.import_draft", "GET"): frozenset({QUAL}),
    ("envelopes.import_draft", "POST"): frozenset({QUAL}),
    ("retention.overview", "GET"): frozenset({QUAL}),
    ("retention.disposal", "GET"): frozenset({QUAL}),
    ("retention.dispose", "POST"): frozenset({QUAL}),
    ("retention.place_hold", "POST"): frozenset({QUAL}),
    ("retention.release_hold", "POST"): frozenset({QUAL}),
    ("api-docs.openapi_json", "GET"): EVERYONE,
    ("api_health.health", "GET"): EVERYONE,
    ("api_me.me", "GET"): SIGNED_IN,
    ("api_tokens.list_tokens", "GET"): SIGNED_IN,
    ("api_tokens.create_token", "POST"): SIGNED_IN,
    ("api_tokens.revoke_token", "DELETE"): SIGNED_IN,
    ("api_users.list_users", "GET"): frozenset({ADMIN}),
    ("api_users.create_user", "POST"): frozenset({ADMIN}),
    ("api_cases.list_cases", "GET"): CASE_ROLES,
    ("api_cases.create_case", "POST"): frozenset({CLIN}),
    ("api_cases.get_case", "GET"): CASE_ROLES,
    ("api_cases.update_request", "PATCH"): frozenset({CLIN}),
    ("api_cases.add_attachment", "POST"): frozenset({CLIN}),
    ("api_cases.remove_attachment", "DELETE"): frozenset({CLIN}),
    ("api_cases.download_attachment", "GET"): CASE_ROLES,
    ("api_cases.submit", "POST"): frozenset({CLIN}),
    ("api_cases.add_iteration", "POST"): frozenset({ENG}),
    ("api_cases.verify_iteration", "POST"): frozenset({ENG}),
    ("api_cases.confirm_characteristics", "POST"): frozenset({ENG}),
    ("api_cases.get_job", "GET"): CASE_ROLES,
    ("api_envelopes.list_envelopes", "GET"): CASE_ROLES,
    ("api_envelopes.create_envelope", "POST"): frozenset({QUAL}),
    ("api_envelopes.update_envelope", "PATCH"): frozenset({QUAL}),
    ("api_envelopes.approve_envelope", "POST"): frozenset({QUAL}),
    ("api_cases.transition", "POST"): CASE_ROLES,
    ("api_cases.comment", "POST"): CASE_ROLES,
    ("api_packages.installation_key", "GET"): SIGNED_IN,
    ("api_packages.export_case", "POST"): frozenset({QUAL}),
    ("api_packages.export_cases", "POST"): frozenset({QUAL}),
    ("api_notifications.notifications", "GET"): SIGNED_IN,
    ("api_search.search", "GET"): frozenset({QUAL}),
    ("api_catalogue.device_types", "GET"): frozenset({CLIN, ENG, QUAL}),
    ("api_catalogue.sites", "GET"): frozenset({CLIN, ENG, QUAL}),
}

SAMPLE_ARGS = {"filename": "css/app.css", "token_id": "999999", "user_id": "999999",
               "case_id": "999999", "attachment_id": "999999", "device_type_id": "999999",
               "number": "999999", "version_id": "999999",
               "job_id": "999999", "hold_id": "999999", "token": "not-a-token"}

# (tf_select, choosing between several second factors, exists only mid-sign-in for everyone.)
# Steps of a sign-in in progress: public, but Flask-Security answers them only when the session
# holds a password-verified user; without one, anonymous visitors are sent back to sign in.
SIGN_IN_STEPS = frozenset({"security.two_factor_setup", "security.two_factor_token_validation",
                           "security.tf_select", "security.mf_recovery",
                           "security.two_factor_rescue"})


def _routes(app: Flask) -> list[tuple[str, str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            url = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: SAMPLE_ARGS[m.group(1)], rule.rule)
            routes.append((rule.endpoint, method, url))
    return routes


def test_every_route_is_in_the_table(app: Flask) -> None:
    present = {(endpoint, method) for endpoint, method, _ in _routes(app)}
    missing = present - set(ROUTE_ROLE_TABLE)
    stale = set(ROUTE_ROLE_TABLE) - present
    assert not missing, f"routes missing from the route × role table: {sorted(missing)}"
    assert not stale, f"table rows for routes that no longer exist: {sorted(stale)}"


def test_every_view_declares_its_permission_and_it_matches_the_table(app: Flask) -> None:
    for (endpoint, _method), allowed in ROUTE_ROLE_TABLE.items():
        declared = LIBRARY_ENDPOINTS.get(endpoint) or endpoint_permission(
            app.view_functions[endpoint])
        assert declared is not None, f"{endpoint} declares no permission"
        granted = {role for role in (CLIN, ENG, QUAL, ADMIN)
                   if declared in permissions_for([role])}
        if declared.value == "public":
            granted.add(ANON)
        assert granted == set(allowed), f"{endpoint}: declares {declared}, table says {allowed}"


@pytest.mark.usefixtures("no_csrf")
def test_each_role_reaches_exactly_its_routes(app: Flask, accounts: Accounts) -> None:
    failures = []
    for who in sorted(EVERYONE):
        client = app.test_client()
        headers = {}
        if who != ANON:
            accounts.login(client, who)
            headers = {"Authorization": f"Bearer {accounts.token(who)}"}
        for endpoint, method, url in _routes(app):
            if endpoint == "security.logout" or (
                    endpoint == "security.two_factor_token_validation" and who != ANON):
                # Both end this client's session (a code check without a sign-in in progress
                # signs the user out); reached as the table says in test_auth / test_mfa.
                continue
            is_api = url.startswith("/api/")
            response = client.open(url, method=method, headers=headers if is_api else {},
                                   json={} if is_api and method == "POST" else None)
            response.close()
            location = response.headers.get("Location", "")
            refused = response.status_code in (401, 403) or (
                response.status_code == 302 and "/login" in location
                and endpoint not in {"security.login", "main.index"})
            expected_allowed = who in ROUTE_ROLE_TABLE[(endpoint, method)] and not (
                who == ANON and endpoint in SIGN_IN_STEPS) and endpoint != "security.tf_select"
            if refused == expected_allowed:
                failures.append(f"{who} {method} {url}: {response.status_code} {location}")
            if refused and who != ANON and is_api:
                body = response.get_json()
                assert body["error"] == "forbidden" and body["message"], body
    assert not failures, "\n".join(failures)
