"""Render a :class:`~streamguard.delivery.planner.Plan` as terminal text or as Markdown (job summaries)."""

from typing import Any

from streamguard.delivery.diff import Action, Change, render_value
from streamguard.delivery.planner import Plan

_SYMBOL = {Action.CREATE: "+", Action.CHANGE: "~", Action.DELETE: "-", Action.UNCHANGED: "="}
_MD_ACTION = {Action.CREATE: "🆕 create", Action.CHANGE: "✏️ change", Action.DELETE: "🗑️ delete"}


def summary(change: Change) -> str:
    """One line about what a resource is (for creates and deletes)."""
    resource = change.desired or change.live
    spec: dict[str, Any] = resource.spec if resource else {}
    kind = change.key.kind
    if kind == "FeatureView":
        entities = ", ".join(e.get("name", "?") for e in spec.get("entities", []))
        return f"{len(spec.get('features', []))} features, entities: {entities}"
    if kind == "StreamingWindow":
        windows = ", ".join(w.get("name") or w.get("length", "?") for w in spec.get("windows", []))
        aggs = len(spec.get("aggregations", []))
        plural = "s" if aggs != 1 else ""
        return (f"topic {spec.get('source', {}).get('topic', '?')}, windows {windows}, {aggs} aggregation{plural} "
                f"-> view {spec.get('featureView', '?')}")
    if kind == "DriftMonitor":
        features = spec.get("features") or ["all numeric"]
        return f"view {spec.get('featureView', '?')}, features: {', '.join(features)}"
    return ""


def totals(plan: Plan) -> str:
    return (f"{plan.count(Action.CREATE)} to create, {plan.count(Action.CHANGE)} to change, "
            f"{plan.count(Action.DELETE)} to delete, {plan.count(Action.UNCHANGED)} unchanged")


def verdict(plan: Plan) -> str:
    if not plan.breaking:
        return "OK: nothing would break"
    count = len(plan.problems) + (0 if plan.feast is None or plan.feast.ok else 1)
    return f"FAILED: {count} problem{'s' if count != 1 else ''} would break the apply"


def _heading(plan: Plan) -> str:
    if plan.offline:
        return f"StreamGuard validate: {plan.path} ({len(plan.changes)} resources, offline)"
    return f"StreamGuard plan for {plan.path}, compared with {plan.target}"


def text(plan: Plan) -> str:
    lines = [_heading(plan), ""]
    visible = [c for c in plan.changes if c.action is not Action.UNCHANGED]
    if plan.offline:
        lines.extend(f"  {c.key}: {summary(c)}" for c in plan.changes)
    elif not visible:
        lines.append("  No changes: the cluster matches the folder.")
    for change in [] if plan.offline else visible:
        lines.append(f"  {_SYMBOL[change.action]} {change.key} ({change.action.value})")
        if change.action is Action.CHANGE:
            lines.extend(f"      {f.describe()}" for f in change.fields)
        else:
            lines.append(f"      {summary(change)}")
    if plan.compat:
        lines += ["", "Contracts (BACKWARD):"]
        for key, result in plan.compat:
            mark = "ok  " if result.compatible else "FAIL"
            lines.append(f"  {mark} {key}: subject {result.subject} vs {result.against}")
    for title, items in (("Problems (would break):", [str(p) for p in plan.problems]),
                         ("Warnings:", plan.warnings), ("Notes:", plan.notes)):
        if items:
            lines += ["", title, *(f"  - {item}" for item in items)]
    if plan.feast is not None:
        lines += ["", f"feast plan: {'ok' if plan.feast.ok else 'FAILED'}",
                  *(f"  {line}" for line in plan.feast.output.splitlines()),
                  *(f"  - {note}" for note in plan.feast.notes)]
    lines += ["", verdict(plan)] if plan.offline else ["", f"Plan: {totals(plan)}.", verdict(plan)]
    return "\n".join(lines) + "\n"


def _md_escape(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def markdown(plan: Plan) -> str:
    icon = "❌" if plan.breaking else "✅"
    if plan.offline:
        lines = [f"### StreamGuard validate: `{plan.path}`", "",
                 f"**{len(plan.changes)} resources** · {icon} {verdict(plan)}", ""]
    else:
        lines = [f"### StreamGuard plan: `{plan.path}`", "", f"Compared with {plan.target}.", "",
                 f"**{totals(plan)}** · {icon} {verdict(plan)}", ""]
    visible = [] if plan.offline else [c for c in plan.changes if c.action is not Action.UNCHANGED]
    if visible:
        lines += ["| Action | Resource | Details |", "|---|---|---|"]
        for change in visible:
            details = (f"{len(change.fields)} field change{'s' if len(change.fields) != 1 else ''}"
                       if change.action is Action.CHANGE else summary(change))
            lines.append(f"| {_MD_ACTION[change.action]} | {change.key.kind} `{change.key.namespace}/"
                         f"{change.key.name}` | {_md_escape(details)} |")
        lines.append("")
    elif not plan.offline:
        lines += ["No changes: the cluster matches the folder.", ""]
    changed = [c for c in visible if c.action is Action.CHANGE]
    if changed:
        lines += ["<details open><summary>Field changes</summary>", "", "```diff"]
        for change in changed:
            lines.append(f"@@ {change.key} @@")
            for f in change.fields:
                if f.added or f.removed:
                    lines.append(f.describe())
                else:
                    lines += [f"- {f.path}: {render_value(f.old)}", f"+ {f.path}: {render_value(f.new)}"]
        lines += ["```", "", "</details>", ""]
    if plan.problems:
        lines += ["#### ❌ Problems", ""]
        lines.extend(f"- **{_md_escape(p.where)}** `{p.field or '-'}` ({p.check}): {_md_escape(p.message)}"
                     for p in plan.problems)
        lines.append("")
    if plan.compat:
        lines += ["#### Contracts (BACKWARD)", "", "| Resource | Subject | Compared with | Result |",
                  "|---|---|---|---|"]
        for key, result in plan.compat:
            outcome = "✅ compatible" if result.compatible else "❌ " + _md_escape(
                "; ".join(i.describe() for i in result.issues))
            lines.append(f"| {key} | `{result.subject}` | {_md_escape(result.against)} | {outcome} |")
        lines.append("")
    for title, items in (("⚠️ Warnings", plan.warnings), ("Notes", plan.notes)):
        if items:
            lines += [f"#### {title}", "", *(f"- {_md_escape(i)}" for i in items), ""]
    if plan.feast is not None:
        lines += [f"#### feast plan {'✅' if plan.feast.ok else '❌'}", "", "```", plan.feast.output.rstrip(),
                  "```", *(f"- {n}" for n in plan.feast.notes), ""]
    return "\n".join(lines)
