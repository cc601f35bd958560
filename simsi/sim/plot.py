"""Timelines of a finished run, drawn with matplotlib from the trace alone.

The top panel has one row per host, with true time across. Each incarnation
is a bar from its start to its crash or stop (or the end of the run), and
incarnations alive at once share a row in separate lanes. On the bars sit the
activations of the instance named by the single-instance counterexample
(highlighted), alarm fires as ticks (early fires in red) and faults as
markers. Faults that target no host are dashed vertical lines. The bottom panel
draws each host clock's offset from true time in milliseconds::

    figure = timeline_figure(run_scenario(load_scenario("scenarios/quickstart.toml")))
    figure.savefig("timeline.png")

The figure uses the Agg canvas directly and never touches ``pyplot``'s global
state, so it works in servers, tests and worker processes. Every artist of a
trace element has a ``gid`` (``"incarnation:host-1#0"``, ``"holding:..."``,
``"fires:..."``, ``"fault:crash"``, ``"clock:host-1"``) for tests and tools.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from simsi.core.placement import expand_hosts
from simsi.sim.checkers import EARLY_TOLERANCE_US, holdings
from simsi.sim.clock import HostClock
from simsi.sim.report import expectations_met
from simsi.sim.trace import MICROS, TraceEvent
from simsi.sim.world import SimResult

logger = logging.getLogger(__name__)

END_COLORS = {"crashed": "#d62728", "stopped": "#7f7f7f", "running at the end": "#2ca02c"}
"""Edge colour of an incarnation's bar by how it ended."""

FAULT_MARKERS = {
    "crash": ("X", "#d62728"),
    "stop": ("s", "#7f7f7f"),
    "restart": ("^", "#2ca02c"),
    "replace": ("P", "#1f77b4"),
    "duplicate_identity": ("D", "#9467bd"),
    "clock_offset": ("o", "#ff7f0e"),
    "clock_drift": ("o", "#ff7f0e"),
    "clock_step": ("o", "#ff7f0e"),
}
"""Marker and colour per fault kind; other kinds get a black star."""

CLOCK_KINDS = ("clock_offset", "clock_drift", "clock_step")


@dataclass
class IncarnationSpan:
    """One incarnation's bar: host, label, true start and end in seconds, end state and lane."""

    host: str
    label: str
    start: float
    end: float
    ended: str
    lane: int = 0


LaneBox = Callable[[IncarnationSpan], tuple[float, float]]
"""Maps an incarnation's span to the bottom and height of its lane in the timeline."""


def incarnation_spans(events: list[TraceEvent], end_s: float) -> list[IncarnationSpan]:
    """Return every incarnation's span, in start order, with lanes assigned per host."""
    spans: dict[str, IncarnationSpan] = {}
    for event in events:
        if event.kind == "host_start":
            spans[event["inc"]] = IncarnationSpan(
                event["host"], event["inc"], event.t, end_s, "running at the end"
            )
        elif event.kind in ("host_crash", "host_stop") and event["inc"] in spans:
            span = spans[event["inc"]]
            span.end = event.t
            span.ended = "crashed" if event.kind == "host_crash" else "stopped"
    lane_ends: dict[str, list[float]] = {}
    for span in spans.values():
        lanes = lane_ends.setdefault(span.host, [])
        free = [index for index, busy_until in enumerate(lanes) if busy_until <= span.start]
        span.lane = free[0] if free else len(lanes)
        if span.lane == len(lanes):
            lanes.append(span.end)
        else:
            lanes[span.lane] = span.end
    return list(spans.values())


def _early_fires(events: list[TraceEvent]) -> set[int]:
    # The same rule as the alarm checker: due time from the set (or last retry), and a fire
    # more than EARLY_TOLERANCE_US before it is early.
    due: dict[tuple[str, str, int], int] = {}
    early: set[int] = set()
    for event in events:
        if event.kind in ("alarm_set", "alarm_retry"):
            due[(event["inst"], event["alarm"], event["rev"])] = event["due_us"]
        elif event.kind == "alarm_fire":
            due_us = due.get((event["inst"], event["alarm"], event["rev"]))
            if due_us is not None and due_us - event.t_us > EARLY_TOLERANCE_US:
                early.add(event.seq)
    return early


@dataclass
class _MachineClocks:
    """The clocks one host's processes ran on, each from the true time it took over."""

    clocks: list[tuple[float, HostClock]]
    changes: list[float]

    def at(self, t: float) -> HostClock:
        current = self.clocks[0][1]
        for start, clock in self.clocks:
            if start <= t:
                current = clock
        return current


def clock_offsets(
    events: list[TraceEvent], hosts: list[str], end_s: float
) -> dict[str, list[tuple[float, float]]]:
    """Return each clock's offset from true time in milliseconds, as ``(true s, ms)`` points.

    A host's line follows the ``clock_*`` faults of the trace, and a restart with
    ``offset_s`` or ``drift_ppm`` moves it to a new machine clock, as the world
    does. A duplicate identity runs on its own machine, whose line is keyed by the
    incarnation label and starts at the incarnation's start.

    NOTE: clocks are rebuilt from fault events. A fault kind that changes clocks
    some other way (a fleet started on other machines) is not drawn.
    """
    machines = {host: _MachineClocks([(0.0, HostClock())], [0.0]) for host in hosts}
    extra: dict[str, tuple[HostClock, float]] = {}
    pending_duplicate: dict[str, dict[str, float]] = {}
    for event in events:
        if event.kind == "fault":
            fault, host, params = event["fault"], event["host"], event["params"]
            machine = machines.get(host)
            if fault in CLOCK_KINDS and machine is not None:
                clock = machine.at(event.t)
                if fault == "clock_offset":
                    clock.set_offset(params["offset_s"], at=event.t)
                elif fault == "clock_drift":
                    clock.set_drift_ppm(params["drift_ppm"], at=event.t)
                else:
                    clock.step(params["step_s"], at=event.t)
                machine.changes += [event.t - 1e-9, event.t]
            elif fault == "restart" and machine is not None and _moves_machine(params):
                moved = HostClock(
                    offset=params.get("offset_s") or 0.0, drift_ppm=params.get("drift_ppm") or 0.0
                )
                machine.clocks.append((event.t, moved))
                machine.changes += [event.t - 1e-9, event.t]
            elif fault == "duplicate_identity":
                pending_duplicate[host] = params
        elif event.kind == "host_start" and event["host"] in pending_duplicate:
            params = pending_duplicate.pop(event["host"])
            clock = HostClock(
                offset=params.get("offset_s") or 0.0, drift_ppm=params.get("drift_ppm") or 0.0
            )
            extra[event["inc"]] = (clock, event.t)

    def offset_ms(clock: HostClock, t: float) -> float:
        return (clock.read(t) - clock.epoch - t) * 1000

    lines = {
        host: [(t, offset_ms(machine.at(t), t)) for t in sorted({*machine.changes, end_s})]
        for host, machine in machines.items()
    }
    for label, (clock, start) in extra.items():
        lines[label] = [(t, offset_ms(clock, t)) for t in (start, end_s)]
    return lines


def _moves_machine(params: dict[str, float | None]) -> bool:
    return params.get("offset_s") is not None or params.get("drift_ppm") is not None


def _title(result: SimResult) -> str:
    checks = result.checks
    verdict = "expectations met" if expectations_met(result) else "expectations NOT met"
    single = "holds" if checks.single_instance.holds else "violated"
    routing = "holds" if checks.routing.holds else "violated"
    return (
        f"{result.scenario.name}, seed {result.seed}: {verdict}\n"
        f"single instance {single}, routing {routing}, {len(checks.alarms.lost)} alarms lost, "
        f"{checks.alarms.early_fires} early fires"
    )


def timeline_figure(result: SimResult) -> Figure:
    """Return the timeline of ``result`` as a matplotlib figure on an Agg canvas."""
    events = result.trace.events
    end_s = result.scenario.run.end_s
    hosts = expand_hosts(result.scenario.cluster.hosts)
    spans = incarnation_spans(events, end_s)
    lanes = {host: 1 + max((s.lane for s in spans if s.host == host), default=0) for host in hosts}
    row = {host: index for index, host in enumerate(hosts)}

    def lane_box(span: IncarnationSpan) -> tuple[float, float]:
        height = 0.8 / lanes[span.host]
        return row[span.host] - 0.4 + span.lane * height, height

    figure = Figure(figsize=(12, 1.6 + 0.7 * len(hosts) + 1.8), layout="constrained")
    FigureCanvasAgg(figure)
    timeline, clock_axes = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [max(2, len(hosts)), 1.6]}
    )
    figure.suptitle(_title(result), fontsize=10)

    by_label = {span.label: span for span in spans}
    for span in spans:
        bottom, height = lane_box(span)
        bars = timeline.barh(
            bottom,
            span.end - span.start,
            left=span.start,
            height=height * 0.9,
            align="edge",
            color="#c6dbef",
            edgecolor=END_COLORS[span.ended],
            linewidth=1.2,
        )
        bars.patches[0].set_gid(f"incarnation:{span.label}")
        timeline.text(span.start, bottom + height * 0.15, f" {span.label}", va="center", fontsize=7)

    _draw_violation(timeline, result, by_label, lane_box)
    _draw_fires(timeline, events, by_label, lane_box)
    _draw_faults(timeline, events, row)

    timeline.set_yticks(range(len(hosts)), hosts)
    timeline.set_ylim(len(hosts) - 0.5, -0.5)
    timeline.set_xlim(0, end_s)
    timeline.set_ylabel("host")
    timeline.grid(axis="x", alpha=0.3)

    for name, points in clock_offsets(events, hosts, end_s).items():
        xs, ys = zip(*points, strict=True)
        style = "--" if "#" in name else "-"
        (line,) = clock_axes.plot(xs, ys, style, label=name, linewidth=1)
        line.set_gid(f"clock:{name}")
    clock_axes.set_ylabel("clock offset (ms)")
    clock_axes.set_xlabel("true time (s)")
    clock_axes.grid(alpha=0.3)
    clock_axes.margins(y=0.2)
    clock_axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    return figure


def _draw_violation(
    timeline: Axes, result: SimResult, by_label: dict[str, IncarnationSpan], lane_box: LaneBox
) -> None:
    first = result.checks.single_instance.first
    if first is None:
        return
    end_us = round(result.scenario.run.end_s * MICROS)
    timeline.axvspan(
        first.start_us / MICROS, first.end_us / MICROS, color="#ffbb78", alpha=0.35, zorder=0
    )
    for holding in holdings(result.trace.events, end_us):
        span = by_label.get(holding.inc)
        if holding.instance_id != first.instance_id or span is None:
            continue
        bottom, height = lane_box(span)
        bars = timeline.barh(
            bottom + height * 0.3,
            (holding.end_us - holding.start_us) / MICROS,
            left=holding.start_us / MICROS,
            height=height * 0.3,
            align="edge",
            color="#ff7f0e",
        )
        bars.patches[0].set_gid(f"holding:{holding.instance_id}:{holding.inc}")
    timeline.text(
        first.start_us / MICROS,
        -0.45,
        f" {first.instance_id} live on two incarnations",
        fontsize=8,
        color="#d62728",
        va="top",
    )


def _draw_fires(
    timeline: Axes,
    events: list[TraceEvent],
    by_label: dict[str, IncarnationSpan],
    lane_box: LaneBox,
) -> None:
    early = _early_fires(events)
    fires: dict[str, tuple[list[float], list[float]]] = {}
    for event in events:
        if event.kind == "alarm_fire" and event["inc"] in by_label:
            on_time, too_early = fires.setdefault(event["inc"], ([], []))
            (too_early if event.seq in early else on_time).append(event.t)
    for label, (on_time, too_early) in fires.items():
        bottom, height = lane_box(by_label[label])
        for times, color, kind in ((on_time, "#08519c", "fires"), (too_early, "#d62728", "early")):
            if times:
                (line,) = timeline.plot(
                    times, [bottom + height * 0.8] * len(times), "|", color=color, markersize=4
                )
                line.set_gid(f"{kind}:{label}")


def _draw_faults(timeline: Axes, events: list[TraceEvent], row: dict[str, int]) -> None:
    seen: set[str] = set()
    for event in events:
        if event.kind != "fault":
            continue
        kind, host = event["fault"], event["host"]
        marker, color = FAULT_MARKERS.get(kind, ("*", "black"))
        label = kind if kind not in seen else None
        seen.add(kind)
        if host is None or host not in row:
            line = timeline.axvline(event.t, color=color, linestyle="--", linewidth=1, label=label)
        else:
            (line,) = timeline.plot(
                [event.t], [row[host] - 0.42], marker, color=color, markersize=8, label=label
            )
        line.set_gid(f"fault:{kind}")
    handles = [
        line
        for line in timeline.get_lines()
        if str(line.get_gid()).startswith("fault:") and not str(line.get_label()).startswith("_")
    ]
    key: list[Artist] = [
        Patch(facecolor="#c6dbef", edgecolor=color, label=f"incarnation, {state}")
        for state, color in END_COLORS.items()
    ]
    key += [
        Patch(color="#ff7f0e", label="violating instance live"),
        Line2D([], [], marker="|", linestyle="", color="#08519c", label="alarm fire"),
        Line2D([], [], marker="|", linestyle="", color="#d62728", label="early alarm fire"),
    ]
    timeline.legend(
        handles=key + handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0)
    )


def write_timeline(result: SimResult, path: str | Path) -> Path:
    """Draw the timeline of ``result`` and save it to ``path`` (the format follows the suffix).

    Raises:
        OSError: the file cannot be written.
    """
    target = Path(path)
    figure = timeline_figure(result)
    figure.savefig(target, dpi=110)
    logger.info("wrote the timeline of %s seed %d to %s", result.scenario.name, result.seed, target)
    return target
