"""``infra plan --diff PREVIOUS.json``: what a change does to a stack, as a pull-request comment.

Compares the plan of the current checkout with a previous ``infra plan --format json`` output (one
stack's object, or the list ``--stack all`` writes). Resources are matched by URN:

* added / removed resources (type and name);
* changed resources with the inputs that changed, ``before -> after``. Inputs are flattened to paths
  (``scalingConfig.maxCapacity``); JSON strings such as ECS ``containerDefinitions`` are opened, and
  lists of ``{name, value}`` entries or ``KEY=VALUE`` strings are keyed by name, so adding one env var
  shows as one change, not a shifted list. Values are compared as the plans print them: both sides went
  through the plan's masking (secret values are ``[secret]``, so a changed secret value does not show,
  and the previous file is masked again before it is read);
* the monthly cost: total before/after/delta and the delta of every estimate line, plus a note when
  the prices now come from another region.

A stack present on one side only is reported as new or gone; a stack whose plan is an error on either
side is reported with the error instead of a resource diff. Pure functions over the JSON documents;
the CLI (:func:`fastapi_deploy.plan.cli`) loads the previous file first and exits 2 with one message when it
is missing, unreadable or not a plan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: A missing value on one side of an input change (the key was added or removed).
ABSENT = None


class PreviousPlanError(Exception):
    """The previous plan file is missing, unreadable, or not ``infra plan --format json`` output."""


# --- loading -----------------------------------------------------------------------------------------
def _is_plan(doc: Any) -> bool:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("stack"), str):
        return False
    if "error" in doc:
        return isinstance(doc["error"], str)
    resources = doc.get("resources")
    return (
        isinstance(resources, list)
        and all(isinstance(r, Mapping) and isinstance(r.get("urn"), str) for r in resources)
        and isinstance(doc.get("cost"), Mapping)
    )


def load_previous(path: Path) -> dict[str, dict[str, Any]]:
    """The previous plans by stack name. Raises :class:`PreviousPlanError` with one clear message.

    The message names the file and what is wrong with it, never its content (it may hold values).
    """
    expected = "expected the output of `infra plan --stack S|all --format json`"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PreviousPlanError(f"{path}: no such file ({expected})") from None
    except IsADirectoryError:
        raise PreviousPlanError(f"{path}: is a directory ({expected})") from None
    except UnicodeDecodeError:
        raise PreviousPlanError(f"{path}: not a text file ({expected})") from None
    except OSError as exc:
        raise PreviousPlanError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise PreviousPlanError(f"{path}: not JSON{where}; {expected}") from None
    docs = doc if isinstance(doc, list) else [doc]
    if not docs:
        raise PreviousPlanError(f"{path}: an empty list, no stack plans in it; {expected}")
    plans: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(docs):
        if not _is_plan(item):
            which = f"item {i}" if isinstance(doc, list) else "the document"
            raise PreviousPlanError(
                f"{path}: not an infra plan ({which} lacks 'stack' with 'resources' [each with a 'urn'] "
                f"and 'cost', or 'error'); {expected}"
            )
        plans[item["stack"]] = dict(item)
    return plans


# --- flattening inputs -------------------------------------------------------------------------------
def _maybe_json(value: str) -> Any:
    text = value.strip()
    if text[:1] in "[{" and text[-1:] in "]}":
        try:
            return json.loads(text)
        except ValueError:
            return value
    return value


_ENV_ITEM = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, str):
        parsed = _maybe_json(value)
        if parsed is not value:
            _flatten(parsed, path, out)
            return
    if isinstance(value, Mapping):
        if not value:
            out[path] = {}
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), out)
        return
    if isinstance(value, list):
        if value and all(isinstance(x, Mapping) and isinstance(x.get("name"), str) for x in value):
            names = [x["name"] for x in value]
            if len(set(names)) == len(names):  # env entries, ports, volumes...: keyed by name
                for item in value:
                    rest = {k: v for k, v in item.items() if k != "name"}
                    _flatten(rest if rest else True, f"{path}[{item['name']}]", out)
                return
        if value and all(isinstance(x, str) and _ENV_ITEM.match(x) for x in value):
            pairs = [_ENV_ITEM.match(x) for x in value]
            keys = [m.group(1) for m in pairs if m]
            if len(set(keys)) == len(keys):  # Docker "KEY=VALUE" env list
                for m in pairs:
                    if m:
                        out[f"{path}[{m.group(1)}]"] = m.group(2)
                return
        if all(not isinstance(x, Mapping | list) for x in value):
            out[path] = value  # a list of scalars (subnets, actions) is one value
            return
        for i, item in enumerate(value):
            _flatten(item, f"{path}[{i}]", out)
        return
    out[path] = value


def flatten_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs as ``{path: scalar-or-list}``; JSON strings opened, named lists keyed by name."""
    out: dict[str, Any] = {}
    _flatten(dict(inputs), "", out)
    return out


def _masked(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource's inputs masked exactly as the plan masks them (idempotent on plan output)."""
    from fastapi_deploy.plan import _mask_env_entries

    inputs = resource.get("inputs")
    if not isinstance(inputs, Mapping):
        return {}
    return _mask_env_entries(str(resource.get("type", "")), json.loads(json.dumps(inputs, default=str)))


def _same(a: Any, b: Any) -> bool:
    # The engine hands numbers over as floats; a previous file may have been written by hand as ints.
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return float(a) == float(b)
    return bool(a == b)


def input_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{input, before, after}]`` for each flattened input of two resources that differs (None: absent).

    ``before``/``after`` are plan resources (``type`` + ``inputs``), masked as the plan masks them.
    """
    old, new = flatten_inputs(_masked(before)), flatten_inputs(_masked(after))
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, ABSENT), new.get(key, ABSENT)
        if not _same(a, b):
            changes.append({"input": key, "before": a, "after": b})
    return changes


# --- diffing -----------------------------------------------------------------------------------------
def _ref(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {"urn": resource["urn"], "type": resource.get("type"), "name": resource.get("name")}


def _cost_lines(plan: Mapping[str, Any] | None) -> dict[str, float]:
    lines: dict[str, float] = {}
    if not plan or "error" in plan:
        return lines
    for line in (plan.get("cost") or {}).get("lines") or []:
        if isinstance(line, Mapping) and "resource" in line:
            label = str(line["resource"])
            lines[label] = lines.get(label, 0.0) + float(line.get("monthly") or 0.0)
    return lines


def _total(plan: Mapping[str, Any] | None) -> float | None:
    if plan is None:
        return 0.0
    if "error" in plan:
        return None
    total = (plan.get("cost") or {}).get("monthly_total")
    return float(total) if isinstance(total, int | float) else None


def diff_stack(
    stack: str, previous: Mapping[str, Any] | None, current: Mapping[str, Any] | None, note: str | None = None
) -> dict[str, Any]:
    """The diff of one stack; ``None`` on a side means the stack is not on that side."""
    prev_error = previous.get("error") if previous else None
    cur_error = current.get("error") if current else None
    status = (
        "error"
        if prev_error is not None or cur_error is not None
        else "new"
        if previous is None
        else "gone"
        if current is None
        else "changed"
    )
    added: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    if status != "error":
        old = {r["urn"]: r for r in (previous or {}).get("resources") or []}
        new = {r["urn"]: r for r in (current or {}).get("resources") or []}
        added = [_ref(r) for urn, r in new.items() if urn not in old]
        removed = [_ref(r) for urn, r in old.items() if urn not in new]
        for urn, r in new.items():
            if urn in old:
                changes = input_changes(old[urn], r)
                if old[urn].get("type") != r.get("type"):
                    changes.insert(
                        0, {"input": "(type)", "before": old[urn].get("type"), "after": r.get("type")}
                    )
                if changes:
                    changed.append({**_ref(r), "inputs": changes})
        if status == "changed" and not (added or removed or changed):
            status = "unchanged"

    before, after = _total(previous), _total(current)
    old_lines, new_lines = _cost_lines(previous), _cost_lines(current)
    deltas: list[tuple[str, float | None, float | None, float]] = []
    for label in list(new_lines) + [x for x in old_lines if x not in new_lines]:
        a, b = old_lines.get(label), new_lines.get(label)
        line_delta = round((b or 0.0) - (a or 0.0), 2)
        if line_delta or (a is None) != (b is None):
            deltas.append((label, a, b, line_delta))
    deltas.sort(key=lambda x: (-abs(x[3]), x[0]))
    lines = [{"resource": label, "before": a, "after": b, "delta": d} for label, a, b, d in deltas]
    delta = round(after - before, 2) if before is not None and after is not None else None
    if delta is not None and status == "unchanged" and delta:
        status = "changed"  # same resources, different price (assumptions or the price table moved)
    prev_cost, cur_cost = (previous or {}).get("cost") or {}, (current or {}).get("cost") or {}
    cost: dict[str, Any] = {
        "currency": cur_cost.get("currency") or prev_cost.get("currency") or "USD",
        "before": before if previous is not None else None,
        "after": after if current is not None else None,
        "delta": delta,
        "lines": lines,
    }
    old_region, new_region = prev_cost.get("price_region"), cur_cost.get("price_region")
    if previous and current and "price_region" in prev_cost and old_region != new_region:
        cost["price_region"] = {"before": old_region, "after": new_region}
    return {
        "stack": stack,
        "status": status,
        "note": note,
        "previous_error": prev_error,
        "current_error": cur_error,
        "added": added,
        "removed": removed,
        "changed": changed,
        "cost": cost,
    }


def diff_plans(
    previous: Mapping[str, Mapping[str, Any]],
    current: Sequence[Mapping[str, Any]],
    *,
    all_stacks: bool,
    source: str = "",
) -> dict[str, Any]:
    """The diff document: every current stack against the previous file (and, for ``all``, gone ones)."""
    stacks = []
    for plan in current:
        name = str(plan["stack"])
        note = None
        if name not in previous and not all_stacks:
            note = f"the previous file has no plan for {name} (it has: {', '.join(sorted(previous))})"
        stacks.append(diff_stack(name, previous.get(name), plan, note))
    if all_stacks:
        seen = {str(p["stack"]) for p in current}
        stacks += [diff_stack(name, previous[name], None) for name in sorted(previous) if name not in seen]
    deltas = [s["cost"]["delta"] for s in stacks if s["cost"]["delta"] is not None]
    currency = next((s["cost"]["currency"] for s in stacks), "USD")
    return {
        "previous": source,
        "currency": currency,
        "monthly_delta": round(sum(deltas), 2),
        "stacks": stacks,
    }


# --- Markdown ----------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return " ".join(text.split())


def _fence(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def _code(value: Any, limit: int = 80) -> str:
    if value is ABSENT:
        return "_(absent)_"
    text = _text(value)
    return _fence(text if len(text) <= limit else text[: limit - 1] + "…")


def _change(before: Any, after: Any, limit: int = 80) -> str:
    """``before → after``; long values are cut around their first difference, so the change shows."""
    if before is ABSENT or after is ABSENT:
        return f"{_code(before, limit)} → {_code(after, limit)}"
    a, b = _text(before), _text(after)
    if max(len(a), len(b)) <= limit:
        return f"{_fence(a)} → {_fence(b)}"
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    start = max(0, common - 16)

    def cut(text: str) -> str:
        part = text[start : start + limit]
        return ("…" if start else "") + part + ("…" if start + limit < len(text) else "")

    return f"{_fence(cut(a))} → {_fence(cut(b))}"


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.2f}"


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+,.2f}"


def _summary(s: Mapping[str, Any]) -> str:
    c = s["cost"]
    counts = f"{len(s['added'])} to add, {len(s['changed'])} to change, {len(s['removed'])} to remove"
    if c["delta"] is None:
        money = "monthly cost delta unknown"
    else:
        money = (
            f"monthly cost **{_signed(c['delta'])} {c['currency']}** "
            f"({_money(c['before'])} → {_money(c['after'])})"
        )
    return f"{counts} · {money}"


def _stack_markdown(s: Mapping[str, Any], lines: list[str]) -> None:
    status = s["status"]
    title = {"new": " (new stack)", "gone": " (stack removed)", "error": " (plan error)"}.get(status, "")
    lines.append(f"### `{s['stack']}`{title}")
    lines.append("")
    if s.get("note"):
        lines.append(f"_{s['note']}_")
        lines.append("")
    if status == "error":
        for side in ("previous", "current"):
            error = s[f"{side}_error"]
            if error is not None:
                lines.append(f"- {side} plan failed: {_code(error, 300)}")
        lines.append("- resources not compared: an error plan has none")
        c = s["cost"]
        lines.append(f"- monthly cost: {_money(c['before'])} → {_money(c['after'])} {c['currency']}")
        lines.append("")
        return
    if status == "unchanged":
        lines.append(f"No changes. Monthly cost {_money(s['cost']['after'])} {s['cost']['currency']}.")
        lines.append("")
        return
    lines.append(_summary(s))
    lines.append("")
    rows = [("add", r) for r in s["added"]] + [("change", r) for r in s["changed"]]
    rows += [("remove", r) for r in s["removed"]]
    if rows:
        lines += ["| | resource | type |", "|---|---|---|"]
        lines += [f"| {op} | `{r['name']}` | `{r['type']}` |" for op, r in rows]
        lines.append("")
    if s["changed"]:
        lines.append("**Changed inputs**")
        lines.append("")
        for r in s["changed"]:
            lines.append(f"- `{r['name']}` (`{r['type']}`)")
            lines += [f"  - `{c['input']}`: {_change(c['before'], c['after'])}" for c in r["inputs"]]
        lines.append("")
    c = s["cost"]
    if c.get("price_region"):
        pr = c["price_region"]
        lines.append(f"_Prices now for region {pr['after']} (were {pr['before']})._")
        lines.append("")
    if c["lines"] or c["delta"]:
        lines += [
            f"**Monthly cost ({c['currency']})**",
            "",
            "| line | before | after | delta |",
            "|---|---:|---:|---:|",
        ]
        for line in c["lines"]:
            label = str(line["resource"]).replace("|", "\\|")
            lines.append(
                f"| {label} | {_money(line['before'])} | {_money(line['after'])} | {_signed(line['delta'])} |"
            )
        lines.append(
            f"| **total** | {_money(c['before'])} | {_money(c['after'])} | **{_signed(c['delta'])}** |"
        )
        lines.append("")


def render_markdown(doc: Mapping[str, Any]) -> str:
    """The diff document as Markdown for a pull-request comment."""
    stacks: Iterable[Mapping[str, Any]] = doc["stacks"]
    stacks = list(stacks)
    changed = [s for s in stacks if s["status"] != "unchanged"]
    lines = [
        f"## infra plan diff: {len(changed)} of {len(stacks)} stack(s) changed, monthly cost "
        f"{_signed(doc['monthly_delta'])} {doc['currency']}",
        "",
    ]
    if doc.get("previous"):
        lines += [
            f"Compared with `{Path(str(doc['previous'])).name}` (previous `infra plan --format json`).",
            "",
        ]
    for s in stacks:
        _stack_markdown(s, lines)
    return "\n".join(lines).rstrip() + "\n"
