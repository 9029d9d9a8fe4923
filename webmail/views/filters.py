"""Filters, Vacation and Forwarding: the reader's active Sieve script, written through the
same services as ManageSieve (validated when saved; the MDA runs it).

The three pages share one generated script (webmail/filters.py). An active script that the
webmail did not generate (written over ManageSieve, or edited as text) is shown as it is and
kept: the Filters page edits it as text, and saving rules, a vacation reply or forwarding
writes the generated script beside it and makes that one active (the other stays stored).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailboxes import selectors, services
from mailboxes.exceptions import MailhostError, SieveScriptInvalid
from webmail import filters
from webmail.auth import mailbox_required
from webmail.views.common import folder_items

if TYPE_CHECKING:
    from mailboxes.models import Mailbox, SieveScript

MAX_ROWS = 3  # blank condition and action rows the rule form offers (an edited rule: more)


class Current:
    """The active script and what the pages can make of it."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.active: SieveScript | None = selectors.sievescript_active(mailbox.pk)
        parsed = filters.parse(self.active.text) if self.active else None
        self.hand_written = self.active is not None and parsed is None
        if parsed is None:
            # A generated script that is not active (another one was activated over
            # ManageSieve) is where the pages start again.
            stored = selectors.sievescript_get(mailbox.pk, filters.SCRIPT_NAME)
            parsed = filters.parse(stored.text) if stored else None
        self.settings = parsed or filters.FilterSettings()

    def name_for_generated(self) -> str:
        if self.active is not None and not self.hand_written:
            return self.active.name
        if self.active is not None and self.active.name == filters.SCRIPT_NAME:
            return filters.SCRIPT_NAME + "-generated"  # never over the hand-written one
        return filters.SCRIPT_NAME


def _save(request: HttpRequest, current: Current, settings: filters.FilterSettings) -> bool:
    text = filters.generate(settings)
    try:
        services.sievescript_put(
            mailbox=request.mailbox,
            name=current.name_for_generated(),
            text=text,
            activate=True,
        )
    except SieveScriptInvalid as exc:
        flash.error(request, gettext("The filter could not be saved: %(error)s") % {"error": exc})
        return False
    except MailhostError as exc:
        flash.error(request, gettext("The filter could not be saved: %(error)s") % {"error": exc})
        return False
    if current.hand_written:
        flash.info(
            request,
            gettext("Your script “%(name)s” is kept, inactive; the webmail's is active.")
            % {"name": current.active.name},
        )
    return True


def _context(request: HttpRequest, current: Current, **extra) -> dict:
    return {
        "folders": folder_items(request.mailbox.pk),
        "current": current,
        "active_text": current.active.text if current.active else "",
        **extra,
    }


# --- Filters ------------------------------------------------------------------------------


@require_GET
@mailbox_required
def filters_view(request: HttpRequest) -> HttpResponse:
    current = Current(request.mailbox)
    count = len(current.settings.rules)
    rules = [
        {"index": i, "rule": rule, "text": filters.describe(rule), "last": i == count - 1}
        for i, rule in enumerate(current.settings.rules)
    ]
    editing = None
    edit = request.GET.get("edit", "")
    if edit.isdigit() and int(edit) < len(current.settings.rules):
        editing = int(edit)
    rule = current.settings.rules[editing] if editing is not None else None
    return render(
        request,
        "webmail/filters.html",
        _context(
            request,
            current,
            rules=rules,
            editing=editing,
            form=_form_rows(rule),
            generated=filters.generate(current.settings),
            scripts=selectors.sievescripts_of(request.mailbox.pk),
            fields=filters.FIELD_LABELS,
            operators={**filters.OPERATORS, **filters.SIZE_OPERATORS},
            actions=filters.ACTIONS,
        ),
    )


def _form_rows(rule: filters.Rule | None) -> dict:
    """The rule form's values: a rule being edited, or blank rows."""
    conditions = list(rule.conditions) if rule else []
    actions = list(rule.actions) if rule else []
    blank_condition = filters.Condition("from", "contains", "")
    return {
        "name": rule.name if rule else "",
        "match_all": rule.match_all if rule else True,
        "stop": rule.stop if rule else True,
        "conditions": [
            (i, conditions[i] if i < len(conditions) else blank_condition)
            for i in range(max(MAX_ROWS, len(conditions)))
        ],
        "actions": [
            (i, actions[i] if i < len(actions) else None)
            for i in range(max(MAX_ROWS, len(actions)))
        ],
    }


def _rule_from_post(request: HttpRequest) -> filters.Rule:
    folder_names = {item.folder.name for item in folder_items(request.mailbox.pk)}
    post = request.POST
    conditions = []
    for i in range(MAX_ROWS * 2):
        value = post.get(f"value_{i}", "").strip()
        field = post.get(f"field_{i}", "")
        if not value:
            continue
        conditions.append(
            filters.check_condition(
                filters.Condition(
                    field=field,
                    operator=post.get(f"operator_{i}", ""),
                    value=value,
                    header=post.get(f"header_{i}", "").strip() if field == "header" else "",
                )
            )
        )
    actions = []
    for i in range(MAX_ROWS * 2):
        kind = post.get(f"action_{i}", "")
        if not kind:
            continue
        argument = post.get(f"argument_{i}", "").strip()
        if kind == "move":
            argument = post.get(f"folder_{i}", "")
        if kind in {"flag", "read", "discard"}:
            argument = ""
        actions.append(filters.check_action(filters.Action(kind, argument), folders=folder_names))
    if not conditions:
        raise filters.FilterError("Give at least one condition.")
    if not actions:
        raise filters.FilterError("Give at least one action.")
    name = post.get("name", "").strip() or gettext("Rule %(number)s") % {"number": len(conditions)}
    return filters.Rule(
        name=name[:100],
        conditions=tuple(conditions),
        actions=tuple(actions),
        match_all=post.get("match", "all") != "any",
        stop=post.get("stop") == "on",
    )


@require_POST
@mailbox_required
def rule_add(request: HttpRequest) -> HttpResponse:
    """A new rule at the end, or (`index` given) the rule at that place replaced."""
    current = Current(request.mailbox)
    rules = list(current.settings.rules)
    index = request.POST.get("index", "")
    if index and (not index.isdigit() or int(index) >= len(rules)):
        raise Http404("no such rule")
    try:
        rule = _rule_from_post(request)
    except filters.FilterError as exc:
        flash.error(request, gettext("The rule was not saved: %(error)s") % {"error": exc})
        return redirect("webmail:filters")
    if index:
        rules[int(index)] = rule
    else:
        rules.append(rule)
    if _save(request, current, replace(current.settings, rules=tuple(rules))):
        flash.success(
            request,
            (gettext("Rule “%(name)s” saved.") if index else gettext("Rule “%(name)s” added."))
            % {"name": rule.name},
        )
    return redirect("webmail:filters")


@require_POST
@mailbox_required
def rule_move(request: HttpRequest, index: int) -> HttpResponse:
    """One place up (or down with direction=down): rules run in order."""
    current = Current(request.mailbox)
    rules = list(current.settings.rules)
    other = index + 1 if request.POST.get("direction") == "down" else index - 1
    if not (0 <= index < len(rules) and 0 <= other < len(rules)):
        raise Http404("no such place")
    rules[index], rules[other] = rules[other], rules[index]
    _save(request, current, replace(current.settings, rules=tuple(rules)))
    return redirect("webmail:filters")


@require_POST
@mailbox_required
def rule_delete(request: HttpRequest, index: int) -> HttpResponse:
    current = Current(request.mailbox)
    rules = list(current.settings.rules)
    if index >= len(rules):
        raise Http404("no such rule")
    removed = rules.pop(index)
    if _save(request, current, replace(current.settings, rules=tuple(rules))):
        flash.success(request, gettext("Rule “%(name)s” deleted.") % {"name": removed.name})
    return redirect("webmail:filters")


@require_POST
@mailbox_required
def script_save(request: HttpRequest) -> HttpResponse:
    """The active script edited as text (kept as written; validated when saved)."""
    current = Current(request.mailbox)
    text = request.POST.get("script", "").replace("\r\n", "\n")
    name = current.active.name if current.active else filters.SCRIPT_NAME
    try:
        services.sievescript_put(mailbox=request.mailbox, name=name, text=text, activate=True)
    except MailhostError as exc:
        flash.error(request, gettext("The script was not saved: %(error)s") % {"error": exc})
        return render(
            request,
            "webmail/filters.html",
            _context(request, current, rules=[], raw_text=text, raw_error=True),
            status=400,
        )
    flash.success(request, gettext("Script “%(name)s” saved.") % {"name": name})
    return redirect("webmail:filters")


@require_POST
@mailbox_required
def script_activate(request: HttpRequest) -> HttpResponse:
    """Make one of the stored scripts the active one ("" : none runs)."""
    name = request.POST.get("name", "")
    try:
        services.sievescript_activate(mailbox=request.mailbox, name=name)
    except MailhostError as exc:
        flash.error(request, gettext("Not changed: %(error)s") % {"error": exc})
    else:
        flash.success(
            request,
            gettext("“%(name)s” is active now.") % {"name": name}
            if name
            else gettext("No filters run now."),
        )
    return redirect("webmail:filters")


@require_POST
@mailbox_required
def script_delete(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "")
    try:
        services.sievescript_delete(mailbox=request.mailbox, name=name)
    except MailhostError as exc:
        flash.error(request, gettext("Not deleted: %(error)s") % {"error": exc})
    else:
        flash.success(request, gettext("“%(name)s” deleted.") % {"name": name})
    return redirect("webmail:filters")


# --- Vacation and forwarding --------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@mailbox_required
def vacation_view(request: HttpRequest) -> HttpResponse:
    current = Current(request.mailbox)
    vacation = current.settings.vacation
    if request.method == "POST":
        post = request.POST
        try:
            start, end = (
                filters.iso_date(post.get("start", "")),
                filters.iso_date(post.get("end", "")),
            )
            if start and end and end < start:
                raise filters.FilterError("The last day comes before the first.")
            enabled = post.get("enabled") == "on"
            text = post.get("text", "").replace("\r\n", "\n").strip()
            if enabled and not text:
                raise filters.FilterError("Write the reply.")
            vacation = filters.Vacation(
                enabled=enabled,
                subject=post.get("subject", "").strip()[:200],
                text=text,
                start=start,
                end=end,
                days=vacation.days,
            )
        except filters.FilterError as exc:
            flash.error(request, gettext("Not saved: %(error)s") % {"error": exc})
        else:
            if _save(request, current, replace(current.settings, vacation=vacation)):
                flash.success(
                    request,
                    gettext("Vacation reply on.")
                    if vacation.enabled
                    else gettext("Vacation reply off."),
                )
                return redirect("webmail:vacation")
    return render(request, "webmail/vacation.html", _context(request, current, vacation=vacation))


@require_http_methods(["GET", "POST"])
@mailbox_required
def forwarding_view(request: HttpRequest) -> HttpResponse:
    current = Current(request.mailbox)
    forwarding = current.settings.forwarding
    if request.method == "POST":
        address = request.POST.get("address", "").strip()
        try:
            if address:
                filters.check_action(filters.Action("forward", address))
        except filters.FilterError as exc:
            flash.error(request, gettext("Not saved: %(error)s") % {"error": exc})
        else:
            forwarding = filters.Forwarding(address=address, keep=True)
            if _save(request, current, replace(current.settings, forwarding=forwarding)):
                flash.success(
                    request,
                    gettext("A copy of every message goes to %(address)s now.")
                    % {"address": address}
                    if address
                    else gettext("Forwarding off."),
                )
                return redirect("webmail:forwarding")
    return render(
        request, "webmail/forwarding.html", _context(request, current, forwarding=forwarding)
    )
