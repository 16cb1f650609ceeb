from flask.testing import FlaskClient

from tests.conftest import Accounts


def test_login_then_dashboard(client: FlaskClient, accounts: Accounts) -> None:
    accounts.login(client, "clinician")
    page = client.get("/").get_data(as_text=True)
    assert "My cases" in page
    assert "Work queue" not in page
