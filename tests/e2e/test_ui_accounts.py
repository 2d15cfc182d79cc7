"""Accounts in the browser: users (admin), API tokens, the audit log, one's own password, log out everywhere.

Every test makes its own users (the stack is shared by the whole e2e session)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN_PASSWORD
from tests.helpers import eventually, login

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-user-password"
TIMEOUT = 10_000


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sign_in(browser, base: str, username: str, password: str) -> Page:
    """A fresh browser context (its own cookies) with `username` signed in."""
    page = browser.new_page()
    page.goto(base + "/login")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("current-user")).to_have_attribute("data-username", username, timeout=TIMEOUT)
    return page


def make_user(base: str, role: str, prefix: str = "e2e") -> str:
    name = unique(prefix)
    admin = login(base, password=ADMIN_PASSWORD)
    try:
        resp = admin.post("/api/v1/users", json={"name": name, "password": PASSWORD, "role": role})
        assert resp.status_code == 201, resp.text
    finally:
        admin.close()
    return name


def login_status(base: str, username: str, password: str) -> int:
    return httpx.post(f"{base}/api/v1/auth/login", json={"username": username, "password": password}).status_code


def go(page: Page, path: str) -> None:
    """An in-app navigation (no reload), whatever the page shows; the new page makes its API calls."""
    page.evaluate("p => { history.pushState(null, '', p); dispatchEvent(new PopStateEvent('popstate')); }", path)


def open_account_menu(page: Page) -> None:
    page.get_by_test_id("account-menu").click()
    expect(page.get_by_test_id("account-logout")).to_be_visible()


def test_admin_creates_a_viewer_who_manages_own_tokens(stack, browser):
    name = unique("viewer")
    admin_page = sign_in(browser, stack.base, "admin", ADMIN_PASSWORD)
    viewer_page = None
    try:
        # the admin creates the user in the Users page
        admin_page.get_by_test_id("nav-users").click()
        admin_page.get_by_test_id("user-create-name").fill(name)
        admin_page.get_by_test_id("user-create-password").fill(PASSWORD)
        admin_page.get_by_test_id("user-create-role").select_option("viewer")
        admin_page.get_by_test_id("user-create-submit").click()
        row = admin_page.get_by_test_id(f"user-row-{name}")
        expect(row).to_be_visible(timeout=TIMEOUT)
        expect(row).to_have_attribute("data-role", "viewer")
        expect(admin_page.get_by_test_id(f"user-role-{name}")).to_have_value("viewer")
        # the same name again: the gateway's 409 is shown at the name field
        admin_page.get_by_test_id("user-create-name").fill(name)
        admin_page.get_by_test_id("user-create-password").fill(PASSWORD)
        admin_page.get_by_test_id("user-create-submit").click()
        dup = admin_page.locator('[data-testid="user-create-error"][data-field="name"]')
        expect(dup).to_contain_text("already exists", timeout=TIMEOUT)

        # the viewer: no admin pages in the navigation
        viewer_page = sign_in(browser, stack.base, name, PASSWORD)
        expect(viewer_page.get_by_test_id("current-user")).to_have_attribute("data-role", "viewer")
        expect(viewer_page.get_by_test_id("nav-tokens")).to_be_visible()
        expect(viewer_page.get_by_test_id("nav-users")).to_have_count(0)
        expect(viewer_page.get_by_test_id("nav-audit")).to_have_count(0)

        # a token: only the viewer role can be chosen; the secret is shown once
        viewer_page.get_by_test_id("nav-tokens").click()
        role_select = viewer_page.get_by_test_id("token-create-role")
        expect(role_select).to_be_visible(timeout=TIMEOUT)
        assert role_select.locator("option").all_inner_texts() == ["viewer"]
        viewer_page.get_by_test_id("token-create-name").fill("ci script")
        viewer_page.get_by_test_id("token-create-submit").click()
        secret_el = viewer_page.get_by_test_id("token-secret")
        expect(secret_el).to_be_visible(timeout=TIMEOUT)
        expect(viewer_page.get_by_test_id("token-secret-box")).to_contain_text("will not be shown again")
        secret = secret_el.inner_text().strip()
        assert secret.startswith("flint_")
        token_id = secret.split("_")[1]
        expect(viewer_page.get_by_test_id(f"token-row-{token_id}")).to_have_attribute("data-name", "ci script")
        assert secret not in viewer_page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")

        # the token works with the REST API, as the viewer
        bearer = {"Authorization": f"Bearer {secret}"}
        me = httpx.get(f"{stack.base}/api/v1/auth/me", headers=bearer)
        assert me.status_code == 200, me.text
        assert me.json()["username"] == name and me.json()["role"] == "viewer" and me.json()["via"] == "token"

        # not shown again after a reload; the row stays
        viewer_page.reload()
        expect(viewer_page.get_by_test_id(f"token-row-{token_id}")).to_be_visible(timeout=TIMEOUT)
        expect(viewer_page.get_by_test_id("token-secret")).to_have_count(0)
        assert secret not in viewer_page.content()

        # revoke (confirmed): the row goes and the token is refused
        viewer_page.get_by_test_id(f"token-revoke-{token_id}").click()
        viewer_page.get_by_test_id("confirm-ok").click()
        expect(viewer_page.get_by_test_id(f"token-row-{token_id}")).to_have_count(0, timeout=TIMEOUT)
        assert httpx.get(f"{stack.base}/api/v1/auth/me", headers=bearer).status_code == 401

        # an admin page typed in by hand says so instead of failing
        viewer_page.goto(stack.base + "/users")
        expect(viewer_page.get_by_test_id("admin-only")).to_be_visible(timeout=TIMEOUT)
        expect(viewer_page.get_by_test_id("error-banner")).to_have_count(0)
    finally:
        admin_page.close()
        if viewer_page:
            viewer_page.close()


def test_admin_changes_role_disables_resets_and_deletes_users(stack, browser):
    name = make_user(stack.base, "viewer", "managed")
    admin = login(stack.base, password=ADMIN_PASSWORD)
    page = sign_in(browser, stack.base, "admin", ADMIN_PASSWORD)
    try:
        page.get_by_test_id("nav-users").click()
        row = page.get_by_test_id(f"user-row-{name}")
        expect(row).to_be_visible(timeout=TIMEOUT)

        def user(n: str) -> dict:
            return next(u for u in admin.get("/api/v1/users").json() if u["name"] == n)

        page.get_by_test_id(f"user-role-{name}").select_option("operator")
        expect(row).to_have_attribute("data-role", "operator", timeout=TIMEOUT)
        assert user(name)["role"] == "operator"

        page.get_by_test_id(f"user-disable-{name}").click()
        expect(row).to_have_attribute("data-disabled", "true", timeout=TIMEOUT)
        assert user(name)["disabled"] is True
        assert login_status(stack.base, name, PASSWORD) == 401
        page.get_by_test_id(f"user-disable-{name}").click()
        expect(row).to_have_attribute("data-disabled", "false", timeout=TIMEOUT)
        assert login_status(stack.base, name, PASSWORD) == 200

        # reset password: too short is refused at the field, then a good one works
        page.get_by_test_id(f"user-reset-{name}").click()
        page.get_by_test_id("user-reset-password").fill("short")
        page.get_by_test_id("user-reset-submit").click()
        expect(page.get_by_test_id("user-reset-error")).to_contain_text("at least 8", timeout=TIMEOUT)
        page.get_by_test_id("user-reset-password").fill("a-brand-new-password")
        page.get_by_test_id("user-reset-submit").click()
        expect(page.get_by_test_id("user-reset-dialog")).not_to_be_visible(timeout=TIMEOUT)
        assert login_status(stack.base, name, "a-brand-new-password") == 200

        # delete asks first; cancel keeps the user
        page.get_by_test_id(f"user-delete-{name}").click()
        expect(page.get_by_test_id("confirm-dialog")).to_contain_text(name)
        page.get_by_test_id("confirm-cancel").click()
        expect(row).to_be_visible()
        page.get_by_test_id(f"user-delete-{name}").click()
        page.get_by_test_id("confirm-ok").click()
        expect(row).to_have_count(0, timeout=TIMEOUT)
        assert all(u["name"] != name for u in admin.get("/api/v1/users").json())

        # the last enabled admin cannot go: the gateway's 409 detail is shown
        enabled_admins = [u for u in admin.get("/api/v1/users").json() if u["role"] == "admin" and not u["disabled"]]
        if [u["name"] for u in enabled_admins] == ["admin"]:
            page.get_by_test_id("user-delete-admin").click()
            page.get_by_test_id("confirm-ok").click()
            expect(page.get_by_test_id("confirm-error")).to_contain_text("last enabled admin", timeout=TIMEOUT)
            expect(page.get_by_test_id("error-banner")).to_contain_text("last enabled admin")
            page.get_by_test_id("confirm-cancel").click()
            expect(page.get_by_test_id("user-row-admin")).to_be_visible()
    finally:
        page.close()
        admin.close()


def test_audit_page_lists_user_changes(stack, browser):
    name = make_user(stack.base, "viewer", "audited")
    assert login_status(stack.base, name, PASSWORD) == 200  # audited under the name tried
    page = sign_in(browser, stack.base, "admin", ADMIN_PASSWORD)
    try:
        page.get_by_test_id("nav-audit").click()
        page.get_by_test_id("audit-filter-user").fill("admin")
        page.get_by_test_id("audit-auto-refresh").click()  # the record is written just after the response
        created = page.locator('[data-testid="audit-row"][data-action="POST /api/v1/users"][data-user="admin"]')
        expect(created.first).to_be_visible(timeout=15_000)
        expect(created.first.get_by_test_id("audit-result")).to_have_text("ok")
        # only admin's records with the filter on
        expect(page.locator('[data-testid="audit-row"]:not([data-user="admin"])')).to_have_count(0, timeout=TIMEOUT)

        # the user's own login shows when filtering by that name
        page.get_by_test_id("audit-filter-user").fill(name)
        expect(page.locator(f'[data-testid="audit-row"][data-user="{name}"]').first).to_be_attached(timeout=15_000)
        expect(page.locator('[data-testid="audit-row"][data-user="admin"]')).to_have_count(0)
        assert "user=" + name in page.url
    finally:
        page.close()


def test_audit_records_a_ui_user_creation(stack, browser):
    page = sign_in(browser, stack.base, "admin", ADMIN_PASSWORD)
    name = unique("fromui")
    try:
        page.get_by_test_id("nav-users").click()
        page.get_by_test_id("user-create-name").fill(name)
        page.get_by_test_id("user-create-password").fill(PASSWORD)
        page.get_by_test_id("user-create-submit").click()
        expect(page.get_by_test_id(f"user-row-{name}")).to_be_visible(timeout=TIMEOUT)
        page.get_by_test_id(f"user-disable-{name}").click()
        expect(page.get_by_test_id(f"user-row-{name}")).to_have_attribute("data-disabled", "true", timeout=TIMEOUT)

        page.get_by_test_id("nav-audit").click()
        rows = page.get_by_test_id("audit-row")
        # newest first: the PATCH of this user is above its creation
        patch = page.locator(
            '[data-testid="audit-row"][data-action="PATCH /api/v1/users/{name}"]', has_text=name
        )

        def shown():
            page.get_by_test_id("audit-refresh").click()
            return patch.count() > 0

        eventually(shown, timeout=15, interval=0.5, what="the PATCH in the audit log")
        actions = rows.evaluate_all("rows => rows.map(r => r.dataset.action)")
        i_patch = actions.index("PATCH /api/v1/users/{name}")
        assert "POST /api/v1/users" in actions[i_patch + 1 :]
    finally:
        page.close()


def test_change_password_from_the_account_menu(stack, browser):
    name = make_user(stack.base, "operator", "pw")
    page = sign_in(browser, stack.base, name, PASSWORD)
    other = sign_in(browser, stack.base, name, PASSWORD)  # another session of the same user
    try:
        open_account_menu(page)
        page.get_by_test_id("account-change-password").click()
        # a wrong current password: shown at that field
        page.get_by_test_id("password-current").fill("not-the-password")
        page.get_by_test_id("password-new").fill("my-new-password-1")
        page.get_by_test_id("password-confirm").fill("my-new-password-1")
        page.get_by_test_id("password-submit").click()
        error = page.get_by_test_id("password-error")
        expect(error).to_have_attribute("data-field", "current", timeout=TIMEOUT)
        expect(error).to_contain_text("current password is wrong")
        # too short: the gateway's 422 is shown at the new password
        page.get_by_test_id("password-current").fill(PASSWORD)
        page.get_by_test_id("password-new").fill("short")
        page.get_by_test_id("password-confirm").fill("short")
        page.get_by_test_id("password-submit").click()
        expect(error).to_have_attribute("data-field", "new", timeout=TIMEOUT)
        expect(error).to_contain_text("at least 8")
        # confirmation differs: caught before asking
        page.get_by_test_id("password-new").fill("my-new-password-1")
        page.get_by_test_id("password-confirm").fill("my-new-password-2")
        page.get_by_test_id("password-submit").click()
        expect(error).to_have_attribute("data-field", "confirm")
        # right: the dialog closes and this session goes on
        page.get_by_test_id("password-confirm").fill("my-new-password-1")
        page.get_by_test_id("password-submit").click()
        expect(page.get_by_test_id("password-dialog")).not_to_be_visible(timeout=TIMEOUT)
        expect(page.get_by_test_id("password-error")).to_have_count(0)
        page.get_by_test_id("nav-tokens").click()
        expect(page.get_by_test_id("token-create-name")).to_be_visible(timeout=TIMEOUT)
        expect(page.get_by_test_id("error-banner")).to_have_count(0)

        assert login_status(stack.base, name, PASSWORD) == 401
        assert login_status(stack.base, name, "my-new-password-1") == 200
        # the other session ended with the change (a poll may have noticed already)
        go(other, "/tokens")
        expect(other.get_by_test_id("login-username")).to_be_visible(timeout=TIMEOUT)
    finally:
        page.close()
        other.close()


def test_a_request_racing_the_password_change_does_not_log_out(stack, browser):
    """The gateway ends the old session before the new cookie reaches the browser: a request sent in
    between (a poll, a page load) gets 401, and must not throw the user out."""
    name = make_user(stack.base, "viewer", "race")
    page = sign_in(browser, stack.base, name, PASSWORD)
    raced = []

    def hold_the_answer(route):
        # Sent aside (not through the browser, whose cookies stay as they are): the old session ends now.
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        answer = httpx.post(route.request.url, content=route.request.post_data_buffer,
                            headers=route.request.headers, cookies=cookies, timeout=30)
        # a page load in between, with the old cookie
        go(page, "/tokens")
        page.wait_for_timeout(1000)
        raced.append(answer.status_code)
        headers = {k: v for k, v in answer.headers.items() if k not in ("content-length", "content-encoding", "set-cookie")}
        headers["set-cookie"] = "\n".join(answer.headers.get_list("set-cookie"))  # Playwright's separator
        route.fulfill(status=answer.status_code, headers=headers, body=answer.content)

    try:
        page.route("**/api/v1/auth/password", hold_the_answer)
        open_account_menu(page)
        page.get_by_test_id("account-change-password").click()
        page.get_by_test_id("password-current").fill(PASSWORD)
        page.get_by_test_id("password-new").fill("raced-new-password")
        page.get_by_test_id("password-confirm").fill("raced-new-password")
        tokens_answers = []
        page.on("response", lambda r: tokens_answers.append(r.status) if r.url.endswith("/api/v1/auth/tokens") else None)
        page.get_by_test_id("password-submit").click()
        for _ in range(150):  # Playwright runs the route handler only while the test waits in Playwright
            if raced:
                break
            page.wait_for_timeout(200)
        assert raced == [200]
        page.wait_for_timeout(1000)  # the re-check with the new cookie
        expect(page.get_by_test_id("current-user")).to_have_attribute("data-username", name)
        assert "/login" not in page.url
        assert tokens_answers[:1] == [401], "the page load did not race the password change"
        # the refused load was sent again with the new cookie
        expect(page.get_by_test_id("tokens-table")).to_contain_text("No API tokens yet", timeout=TIMEOUT)
        assert tokens_answers == [401, 200]
        expect(page.get_by_test_id("error-banner")).to_have_count(0)
    finally:
        page.close()


def test_log_out_everywhere_ends_other_sessions(stack, browser):
    name = make_user(stack.base, "viewer", "everywhere")
    here = sign_in(browser, stack.base, name, PASSWORD)
    elsewhere = sign_in(browser, stack.base, name, PASSWORD)
    try:
        elsewhere.get_by_test_id("nav-settings").click()
        open_account_menu(here)
        here.get_by_test_id("account-logout-all").click()
        expect(here.get_by_test_id("login-username")).to_be_visible(timeout=TIMEOUT)
        assert here.url.endswith("/login")
        # the other browser (on a page that does not poll) is still showing its page
        expect(elsewhere.get_by_test_id("current-user")).to_be_visible()
        # its next API call finds the session gone and goes to the login page
        elsewhere.get_by_test_id("nav-tokens").click()
        expect(elsewhere.get_by_test_id("login-username")).to_be_visible(timeout=TIMEOUT)
        assert "/login?next=%2Ftokens" in elsewhere.url
        expect(elsewhere.get_by_text("Your session has ended")).to_be_visible()
        # signing in again works and returns there
        elsewhere.get_by_test_id("login-username").fill(name)
        elsewhere.get_by_test_id("login-password").fill(PASSWORD)
        elsewhere.get_by_test_id("login-submit").click()
        expect(elsewhere.get_by_test_id("token-create-name")).to_be_visible(timeout=TIMEOUT)
    finally:
        here.close()
        elsewhere.close()


def test_plain_log_out_keeps_other_sessions(stack, browser):
    name = make_user(stack.base, "viewer", "logout")
    here = sign_in(browser, stack.base, name, PASSWORD)
    elsewhere = sign_in(browser, stack.base, name, PASSWORD)
    try:
        open_account_menu(here)
        here.get_by_test_id("account-logout").click()
        expect(here.get_by_test_id("login-username")).to_be_visible(timeout=TIMEOUT)
        elsewhere.get_by_test_id("nav-tokens").click()
        expect(elsewhere.get_by_test_id("token-create-name")).to_be_visible(timeout=TIMEOUT)
        expect(elsewhere.get_by_test_id("current-user")).to_have_attribute("data-username", name)
    finally:
        here.close()
        elsewhere.close()
