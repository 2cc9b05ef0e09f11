"""The Content-Security-Policy in a real browser: strict on the pages, and the admin and API docs still work."""

from __future__ import annotations

import pytest

from e2e.helpers import PASSWORD, STAFF, log_in

pytestmark = pytest.mark.e2e


def test_the_chat_page_sends_a_strict_policy_with_trusted_types(site, new_page):
    page = new_page()
    log_in(page, site.register())
    response = page.goto("/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "require-trusted-types-for 'script'" in policy
    assert "object-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy


def test_injected_inline_script_never_runs(new_page):
    page = new_page()
    page.goto("/accounts/login/")  # the site-wide policy, without the chat pages' Trusted Types
    ran = page.evaluate(
        """() => {
            window.__ran = false;
            const script = document.createElement("script");
            script.textContent = "window.__ran = true";
            document.body.append(script);
            const image = document.createElement("img");
            image.setAttribute("onerror", "window.__ran = true");
            image.src = "/nowhere.png";
            document.body.append(image);
            return new Promise((resolve) => setTimeout(() => resolve(window.__ran), 300));
        }"""
    )
    assert ran is False
    assert any("script-src 'self'" in error for error in page.problems.errors)
    page.problems.errors.clear()  # these refusals are the point of the test


def test_the_chat_page_accepts_html_only_from_the_sanitiser(site, new_page):
    page = new_page()
    log_in(page, site.register())
    refused = page.evaluate(
        """() => {
            const refusals = [];
            const attempts = {
                innerHTML: () => { document.body.insertAdjacentHTML("beforeend", "<b>raw</b>"); },
                script: () => { document.createElement("script").textContent = "1"; },
            };
            for (const [name, attempt] of Object.entries(attempts)) {
                try { attempt(); } catch (error) { refusals.push(`${name}: ${error.name}`); }
            }
            return refusals;
        }"""
    )
    assert refused == ["innerHTML: TypeError", "script: TypeError"]
    page.problems.errors.clear()


def test_the_admin_and_the_api_docs_work_under_the_policy(site, new_page):
    page = new_page()
    page.goto("/admin/login/")
    page.get_by_label("Username").fill(STAFF)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Site administration").wait_for()
    # The conversations app and its model share a name: the model's link is the one to its change list.
    page.locator('a[href="/admin/conversations/conversation/"]').first.click()
    page.get_by_role("heading", name="Select conversation to change").wait_for()

    response = page.goto("/api/docs/")
    assert "content-security-policy" in response.headers
    page.locator(".swagger-ui .opblock").first.wait_for()
    assert page.locator(".swagger-ui .opblock").count() > 10
