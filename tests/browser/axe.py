"""axe-core (vendored in tests/browser/vendor/) run inside a page: the accessibility rules a reviewer checks with."""

from pathlib import Path

from playwright.sync_api import Page

AXE_SOURCE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()

# Only what fails a person outright: serious and critical violations (contrast, names, labels, ARIA, structure).
RUN_AXE = """async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations
    .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
    .map((violation) => `${violation.id} (${violation.impact}): ${violation.help} at `
      + violation.nodes.slice(0, 3).map((node) => node.target.join(" ")).join(", "));
}"""


def serious_violations(page: Page, where: str) -> list[str]:
    """The serious and critical axe violations on the page as it is now, each prefixed with `where`."""
    # Evaluated through the DevTools protocol: no <script> element is added, the page's CSP does not apply.
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE)
    return [f"{where}: {violation}" for violation in page.evaluate(RUN_AXE)]
