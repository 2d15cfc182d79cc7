"""Beyond loopback Flint serves HTTPS: a self-signed certificate made on first run, HSTS, secure cookies,
and a browser login over it."""

from __future__ import annotations

import ssl

import httpx
import pytest

from tests.e2e.conftest import ADMIN_PASSWORD, start_stack, stop_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory):
    # 0.0.0.0 is "not loopback" for Flint; the test still only talks to 127.0.0.1.
    stack = start_stack(tmp_path_factory.mktemp("tls"), bind_host="0.0.0.0")
    yield stack
    stop_stack(stack)


def test_https_with_the_generated_certificate(tls_stack):
    cert = tls_stack.data_dir / "tls" / "gateway.crt"
    key = tls_stack.data_dir / "tls" / "gateway.key"
    assert cert.is_file() and key.is_file()
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    ctx = ssl.create_default_context(cafile=str(cert))
    resp = httpx.get(f"{tls_stack.base}/api/v1/health", verify=ctx)
    assert resp.status_code == 200
    assert resp.headers["strict-transport-security"].startswith("max-age=")
    with pytest.raises(httpx.HTTPError):
        httpx.get(tls_stack.base.replace("https://", "http://") + "/api/v1/health", timeout=5)
    login = httpx.post(f"{tls_stack.base}/api/v1/auth/login", verify=ctx,
                       json={"username": "admin", "password": ADMIN_PASSWORD})
    assert login.status_code == 200
    cookie_header = "; ".join(login.headers.get_list("set-cookie"))
    assert "Secure" in cookie_header and "HttpOnly" in cookie_header and "samesite=strict" in cookie_header.lower()


def test_browser_login_over_https(tls_stack, browser):
    # The certificate is self-signed: a user accepts it once; the test tells Chromium to.
    page = browser.new_page(ignore_https_errors=True)
    try:
        page.goto(tls_stack.base + "/")
        page.get_by_test_id("login-username").fill("admin")
        page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("current-user").wait_for()
        # the events WebSocket works over wss on the same origin
        page.wait_for_selector('[data-testid="live-indicator"][data-state="live"]', timeout=10_000)
    finally:
        page.close()
