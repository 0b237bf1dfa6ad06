"""The usage chart of the Credits & usage page: server-rendered SVG, no chart library and no script.

Three small bar charts over the same days (previews, saves, credits spent), each on its own scale, so a day with
ten previews and one save shows both.
"""

from dataclasses import dataclass

# The SVG's own units (it scales to the page): one bar per day with a gap, room above the tallest bar.
WIDTH = 300
HEIGHT = 80
_TOP_ROOM = 8
_GAP = 2

SERIES = (("previews", "Previews"), ("saved", "Avatars saved"), ("creditsSpent", "Credits spent"))


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the bar's tooltip: the day and its value


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    total: int
    peak: int
    bars: list[Bar]
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def summary(self) -> str:
        return f"{self.title}: {self.total} in the last {len(self.bars)} days, at most {self.peak} on one day."


def usage_charts(days: list[dict]) -> list[Chart]:
    """One Chart per series of `days` (selectors.usage_for_user's `days`, oldest first)."""
    return [_chart(days, key, title) for key, title in SERIES]


def _chart(days: list[dict], key: str, title: str) -> Chart:
    values = [int(day[key]) for day in days]
    peak = max(values, default=0)
    slot = WIDTH / max(len(values), 1)
    bars = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        height = (HEIGHT - _TOP_ROOM) * value / peak if peak else 0
        # A day with something in it always shows (at least one unit tall).
        height = max(height, 1) if value else 0
        label = f"{day['date']:%d %b}: {value}"
        bars.append(Bar(x=round(i * slot + _GAP / 2, 2), y=round(HEIGHT - height, 2),
                        width=round(slot - _GAP, 2), height=round(height, 2), label=label))  # fmt: skip
    return Chart(key=key, title=title, total=sum(values), peak=peak, bars=bars)
