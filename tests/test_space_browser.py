"""The Space in a real headless browser (Debian's chromium driven by Playwright; no browser is downloaded):
type a prompt, run one generation, watch the streamed coloured steps, then the final text and the GIF."""

from pathlib import Path

import pytest

from test_space import running_space, space_server  # noqa: F401  (the server fixtures, shared)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
COLOURED_SPANS = "span.ef-inserted, span.ef-substituted, span.ef-deleted"

# Records every distinct sequence shown in the live panel, and whether it held a coloured edit, as the page streams.
# It watches the whole document because Gradio may re-create the panel's node after the page has loaded.
WATCH_LIVE_PANEL = """() => {
    window.liveStates = [];
    new MutationObserver(() => {
        const step = document.querySelector('#live-trace .editflow-step');  // the sequence, not Gradio's progress overlay
        if (!step) return;
        const html = step.outerHTML;
        if (window.liveStates.length === 0 || window.liveStates[window.liveStates.length - 1].html !== html) {
            window.liveStates.push({html, coloured: step.querySelectorAll('%s').length > 0});
        }
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}""" % COLOURED_SPANS


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run this test")
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except PlaywrightError as err:
            pytest.skip(f"chromium at {CHROMIUM} cannot be started: {str(err).splitlines()[0]}")
        yield browser
        browser.close()


def test_one_generation_streams_coloured_steps_then_text_and_gif(browser, running_space, tmp_path):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        page.goto(running_space, wait_until="domcontentloaded")
        page.locator("#prompt textarea").fill("hello there")
        page.locator("#live-trace").wait_for(state="attached", timeout=30_000)
        page.evaluate(WATCH_LIVE_PANEL)
        page.locator("#generate").click()

        page.locator(f"#live-trace {COLOURED_SPANS}").first.wait_for(timeout=90_000)
        page.locator("#trace-gif img").wait_for(timeout=90_000)
        final_text = page.locator("#final-text textarea")
        page.wait_for_function("el => el.value.trim().length > 0", arg=final_text.element_handle(), timeout=30_000)

        states = page.evaluate("window.liveStates")
        assert len(states) >= 3, "the live panel should change several times while sampling, not once at the end"
        assert any(state["coloured"] for state in states)
        assert "hello" in states[0]["html"] and "[MASK]" in states[0]["html"]  # the start sequence comes first
        assert page.locator("#trace-gif img").get_attribute("src").startswith("data:image/gif;base64,")  # no file on disk
        assert page.locator("#trace-gif-file a[download]").get_by_text(".gif").count() >= 1  # the download link
        shot = tmp_path / "space.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    finally:
        page.close()
