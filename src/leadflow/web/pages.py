"""The dashboard's pages: overview, leads, one lead, the sales queue, journeys, segments,
reports, the scoring model and settings (docs/dashboard.md)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import yaml
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from leadflow.api.errors import status_of
from leadflow.domain.errors import (
    AuthenticationError,
    Conflict,
    LeadflowError,
    NotFound,
    ValidationError,
)
from leadflow.domain.lifecycle import STAGES, TRANSITIONS
from leadflow.domain.policy_parse import GRADES
from leadflow.ports import LEAD_SORTS, LeadFilter
from leadflow.services.models import load_model_text
from leadflow.services.reports import FUNNEL_STAGES, FunnelGroup
from leadflow.services.users import SESSION_DAYS, Permission, Role, Session
from leadflow.web import charts
from leadflow.web.site import (
    COOKIE,
    HEADERS,
    LOGIN_COOKIE,
    LoginThrottle,
    core,
    current,
    form_of,
    local_path,
    new_login_token,
    redirect,
    render,
    require,
    same_origin,
    secure_cookies,
    set_session_cookie,
)

log = logging.getLogger("leadflow.web")
router = APIRouter(include_in_schema=False)
throttle = LoginThrottle()
FUNNEL = FUNNEL_STAGES
PAGE = 50


# --- signing in and out -----------------------------------------------------------------
@router.get("/login")
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return _login_form(request, 200, target=local_path(next))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email", ""))[:320]
    password = str(form.get("password", ""))[:1024]
    target = local_path(str(form.get("next", "/")))
    token = str(form.get("login_token", ""))
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or token != expected or not same_origin(request):
        return _login_again(request, "The sign-in form expired; please try again.", email, 403)
    keys = [f"ip:{request.client.host if request.client else '-'}", f"email:{email.lower()}"]
    wait = throttle.blocked(keys)
    if wait:
        return _login_again(
            request, f"Too many failed sign-ins; try again in {wait} seconds.", email, 429
        )
    try:
        session = await run_in_threadpool(core(request).sign_in, email, password)  # scrypt
    except (AuthenticationError, ValidationError):
        throttle.failed(keys)
        return _login_again(request, "Wrong email or password.", email, 401)
    throttle.succeeded(keys)
    log.info("user %s signed in", session.user.email)
    response = RedirectResponse(target, status_code=303, headers=HEADERS)
    set_session_cookie(response, request, session.token, SESSION_DAYS * 86400)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


def _login_again(request: Request, error: str, email: str, status: int) -> HTMLResponse:
    target = local_path(request.query_params.get("next"))
    return _login_form(request, status, error=error, email=email, target=target)


def _login_form(request: Request, status: int, **context: Any) -> HTMLResponse:
    """The login page with a fresh form token, also set as a cookie only /login reads."""
    token = new_login_token()
    response = render(request, "login.html", status, login_token=token, **context)
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
        secure=secure_cookies(request), path="/login",
    )  # fmt: skip
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = await run_in_threadpool(current, request)
    if session is not None:
        await form_of(request, session)
        await run_in_threadpool(core(request).sign_out, request.cookies.get(COOKIE, ""))
    response = redirect("/login")
    response.delete_cookie(COOKIE, path="/")
    return response


# --- overview ---------------------------------------------------------------------------
def _window(request: Request) -> tuple[date | None, date | None, str | None]:
    """``since``/``until`` from the query (dates); a bad one becomes a message, no window."""
    values: list[date | None] = []
    for name in ("since", "until"):
        raw = request.query_params.get(name, "").strip()
        if not raw:
            values.append(None)
            continue
        try:
            values.append(date.fromisoformat(raw))
        except ValueError:
            return None, None, f"{name}: {raw!r} is not a date like 2025-03-01"
    return values[0], values[1], None


@router.get("/")
def overview(request: Request) -> HTMLResponse:
    require(request)
    lf = core(request)
    since, until, error = _window(request)
    try:
        by_source = lf.funnel_report("source", since, until).to_json()
    except ValidationError as exc:
        error, since, until = exc.message, None, None
        by_source = lf.funnel_report("source").to_json()
    by_campaign = lf.funnel_report("utm_campaign", since, until).to_json()
    # Every lead of the window is in exactly one source group ("(none)" without a source),
    # so the whole funnel is the sum of the groups: no third pass over the leads.
    groups = by_source["groups"]
    reached = {stage: sum(g["reached"][stage] for g in groups) for stage in FUNNEL}
    conversion = FunnelGroup("all", reached["lead"], reached).conversion if groups else {}
    bars = []
    for stage in FUNNEL:
        share = reached[stage] / reached["lead"] if reached.get("lead") else None
        label = stage.upper() if len(stage) <= 3 else stage.title()
        bars.append(charts.Bar(label, reached[stage], f"{share:.1%}" if share else ""))
    trend = lf.stage_trend("mql", 12)
    sources = top_groups(by_source["groups"])
    campaigns = top_groups(by_campaign["groups"])
    return render(
        request,
        "overview.html",
        error=error,
        since=since,
        until=until,
        reached=reached,
        conversion=conversion,
        now=lf.stage_counts(),
        funnel_chart=charts.hbars(bars, "Leads that reached each stage"),
        trend_chart=charts.lines(
            [d.strftime("%b %d") for d, _ in trend],
            [("MQLs", [n for _, n in trend])],
            "New MQLs per week, the last 12 weeks",
        ),
        sources_chart=charts.hbars(mql_bars(sources), "MQLs by first source", css="c2"),
        campaigns_chart=charts.hbars(mql_bars(campaigns), "MQLs by first-touch campaign"),
        sources=sources,
        campaigns=campaigns,
        sla=lf.sla_report(since, until).to_json() if error is None else None,
    )


def top_groups(groups: list[dict[str, Any]], shown: int = 8) -> list[dict[str, Any]]:
    """The groups that brought the most MQLs, then the most leads."""
    return sorted(groups, key=lambda g: (-g["reached"]["mql"], -g["entered"], g["group"]))[:shown]


def mql_bars(groups: list[dict[str, Any]]) -> list[charts.Bar]:
    return [charts.Bar(g["group"], g["reached"]["mql"], f"{g['entered']:,} leads") for g in groups]


# --- leads ------------------------------------------------------------------------------
@router.get("/leads")
def leads_page(request: Request) -> HTMLResponse:
    require(request)
    params = request.query_params
    q = params.get("q", "").strip()[:200]
    stage = params.get("stage") or None
    grade = params.get("grade") or None
    sort = params.get("sort") or "newest"
    cursor = params.get("cursor") or None
    error = None
    filters = LeadFilter(stage=stage, search=q or None, grade=grade)
    try:
        page = core(request).leads(filters, limit=PAGE, sort=sort, cursor=cursor)
    except ValidationError as exc:
        error = exc.message
        page = core(request).leads(LeadFilter(), limit=PAGE)
    return render(
        request, "leads.html", error=error, page=page, q=q, stage=stage, grade=grade, sort=sort,
        cursor=cursor, stages=STAGES, grades=GRADES, sorts=LEAD_SORTS,
    )  # fmt: skip


@router.get("/leads/{lead_id}")
def lead_page(request: Request, lead_id: int) -> HTMLResponse:
    session = require(request)
    lf = core(request)
    lead = lf.lead(lead_id)
    if lead.id != lead_id:  # merged into another lead: show the survivor
        return render(request, "moved.html", 200, target=f"/leads/{lead.id}", lead_id=lead_id)
    explained = lf.explain(lead.id)
    # The explanation carries the prediction; only without one is the reason asked for.
    prediction = explained["prediction"] or lf.prediction(lead.id)
    rules = sorted(explained["engagement"]["rules"], key=lambda r: -abs(r["score"]))
    return render(
        request,
        "lead.html",
        lead=lead,
        name=_name(lead.traits),
        explained=explained,
        rules=rules,
        prediction=prediction,
        events=lf.lead_events(lead.id, 200),
        deliveries=lf.deliveries(lead.id, 100),
        consent=lf.consent(lead.id),
        assignment=lf.assignment(lead.id),
        segments=lf.lead_segments(lead.id),
        reasons=lf.model.sales,
        can_decide=session.user.can(Permission.DECIDE) and lead.stage == "mql",
        moves=moves_from(lead.stage) if session.user.can(Permission.DECIDE) else [],
    )


def moves_from(stage: str) -> list[str]:
    """The stages a person may move a lead to from ``stage`` (the MQL step has its own form:
    accept or reject with a reason code)."""
    if stage == "mql":
        return []
    return [
        to for (start, to), causes in TRANSITIONS.items() if start == stage and "user" in causes
    ]


def _name(traits: dict[str, Any]) -> str:
    parts = [str(traits.get(k) or "") for k in ("first_name", "last_name")]
    return " ".join(p for p in parts if p).strip() or str(traits.get("name") or "")


@router.post("/leads/{lead_id}/decide")
async def decide(request: Request, lead_id: int) -> Response:
    session = await run_in_threadpool(require, request, Permission.DECIDE)
    form = await form_of(request, session)
    return await run_in_threadpool(_decide, request, session, form, lead_id)


def _decide(request: Request, session: Session, form: dict[str, str], lead_id: int) -> Response:
    back = local_path(form.get("next"), f"/leads/{lead_id}")
    decision = form.get("decision", "")
    try:
        change = core(request).decide(
            lead_id, decision, form.get("reason", ""), actor=f"user:{session.user.email}",
            note=form.get("note", "")[:2000],
        )  # fmt: skip
    except (ValidationError, NotFound, Conflict) as exc:
        return _problem(request, back, exc)
    verb = "accepted" if decision == "accept" else "rejected"
    return redirect(back, f"Lead {change.lead_id} {verb} ({change.to_stage.upper()}).")


@router.post("/leads/{lead_id}/move")
async def move(request: Request, lead_id: int) -> Response:
    session = await run_in_threadpool(require, request, Permission.DECIDE)
    form = await form_of(request, session)
    return await run_in_threadpool(_move, request, session, form, lead_id)


def _move(request: Request, session: Session, form: dict[str, str], lead_id: int) -> Response:
    back = f"/leads/{lead_id}"
    target = form.get("stage", "")
    reason = form.get("reason", "").strip()[:500]
    try:
        if not reason:
            raise ValidationError("reason: say why the lead moves (for the stage history)")
        change = core(request).move_stage(
            lead_id, target, reason, actor=f"user:{session.user.email}",
            note=form.get("note", "")[:2000],
        )  # fmt: skip
    except (ValidationError, NotFound, Conflict) as exc:
        return _problem(request, back, exc)
    return redirect(back, f"Lead {change.lead_id} moved to {change.to_stage}.")


def _problem(request: Request, back: str, exc: LeadflowError) -> HTMLResponse:
    return render(request, "problem.html", status_of(exc), message=exc.message, back=back)


# --- sales queue ------------------------------------------------------------------------
@router.get("/queue")
def queue_page(request: Request) -> HTMLResponse:
    session = require(request)
    lf = core(request)
    own = lf.user_rep(session.user)
    reps = [r.name for r in lf.sales_reps()]
    chosen = request.query_params.get("rep") or None
    if session.user.role == Role.SALES:
        chosen = own  # a rep sees their own queue (every MQL when not linked to a rep)
    error = None
    raw_limit = request.query_params.get("limit", "")
    limit = int(raw_limit) if raw_limit.isdigit() and 0 < int(raw_limit) <= 500 else 25
    try:
        items = lf.sales_queue(chosen, limit + 1)
    except NotFound as exc:
        error, items = exc.message, lf.sales_queue(None, limit + 1)
    more = len(items) > limit
    return render(
        request, "queue.html", items=items[:limit], more=more, limit=limit, reps=reps,
        rep=chosen, own=own, error=error,
        reasons=lf.model.sales, can_decide=session.user.can(Permission.DECIDE),
    )  # fmt: skip


# --- journeys and segments --------------------------------------------------------------
@router.get("/journeys")
def journeys_page(request: Request) -> HTMLResponse:
    require(request, Permission.MARKETING)
    return render(request, "journeys.html", journeys=core(request).journeys())


@router.get("/journeys/{name}")
def journey_page(request: Request, name: str) -> HTMLResponse:
    require(request, Permission.MARKETING)
    lf = core(request)
    journey = lf.journey(name)
    report = lf.journey_report(name)
    bars = [
        charts.Bar(
            s["step"] + (f" / {s['variant']}" if s["variant"] else ""),
            s["sent"], f"{s['open_rate']:.0%} opened · {s['click_rate']:.0%} clicked"
            if s["open_rate"] is not None and s["click_rate"] is not None else "",
        )
        for s in report["steps"]
    ]  # fmt: skip
    return render(
        request, "journey.html", journey=journey, report=report,
        spec=yaml.safe_dump(journey.get("spec", {}), sort_keys=False, allow_unicode=True),
        chart=charts.hbars(bars, f"Messages sent per step of {name}"),
    )  # fmt: skip


@router.get("/segments")
def segments_page(request: Request) -> HTMLResponse:
    require(request, Permission.MARKETING)
    lf = core(request)
    rows = []
    for segment in lf.segments():
        data = segment.to_json()
        text = yaml.safe_dump(data["definition"], sort_keys=False, allow_unicode=True).strip()
        rows.append({**data, "text": text, "members": lf.segment_count(segment.name)})
    return render(request, "segments.html", segments=rows)


# --- reports ----------------------------------------------------------------------------
GROUPINGS = ("source", "utm_campaign", "cohort_month", "segment", "journey")


@router.get("/reports")
def reports_page(request: Request) -> HTMLResponse:
    require(request, Permission.MARKETING)
    lf = core(request)
    since, until, error = _window(request)
    by = request.query_params.get("by") or "source"
    model = request.query_params.get("model") or "w_shaped"
    funnel = sla = attribution = roi = None
    chart = None
    try:
        funnel = lf.funnel_report(by, since, until).to_json()
        sla = lf.sla_report(since, until).to_json()
        dimension = {"utm_campaign": "campaign"}.get(by, by)
        if dimension in ("source", "campaign", "journey"):
            attribution = lf.attribution_report(model, dimension, since, until).to_json()
            roi = lf.roi_report(dimension, since, until, model).to_json()
            top = sorted(attribution["groups"], key=lambda g: -g["opportunities"])[:10]
            chart = charts.hbars(
                [charts.Bar(g["name"] or "(no touch)", g["opportunities"]) for g in top],
                "Opportunities credited", css="c2",
            )  # fmt: skip
    except ValidationError as exc:
        error = exc.message
    return render(
        request, "reports.html", error=error, since=since, until=until, by=by, model=model,
        groupings=GROUPINGS, funnel=funnel, sla=sla, attribution=attribution, roi=roi,
        stages=FUNNEL, attribution_chart=chart,
    )  # fmt: skip


# --- the scoring model ------------------------------------------------------------------
@router.get("/model")
def model_page(request: Request) -> HTMLResponse:
    require(request, Permission.MARKETING)
    return _model(request)


@router.post("/model/backtest")
async def backtest(request: Request) -> Response:
    session = await run_in_threadpool(require, request, Permission.MARKETING)
    form = await form_of(request, session)
    return await run_in_threadpool(_backtest, request, form)


def _backtest(request: Request, form: dict[str, str]) -> Response:
    text = form.get("candidate", "")
    raw_capacity = form.get("capacity", "").strip()
    try:
        capacity = int(raw_capacity) if raw_capacity else 50
        if capacity < 1:
            raise ValueError
    except ValueError:
        return _model(request, text, error=f"capacity: {raw_capacity!r} is not a positive number")
    try:
        candidate = load_model_text(text, "candidate")
        result = core(request).backtest(candidate, capacity=capacity)
    except LeadflowError as exc:
        return _model(request, text, error=exc.message, status=400)
    return _model(request, text, backtest=result, capacity=capacity)


def _model(
    request: Request,
    candidate: str | None = None,
    backtest: dict[str, Any] | None = None,
    error: str | None = None,
    capacity: int = 50,
    status: int = 200,
) -> HTMLResponse:
    lf = core(request)
    outcome = request.query_params.get("outcome") or "sql"
    try:
        quality = lf.score_quality_report(outcome).to_json()
    except ValidationError as exc:
        error, quality = exc.message, lf.score_quality_report().to_json()
    deciles = [
        charts.Bar(f"D{d['decile']}", d["conversion"] or 0.0, f"{d['converted']}/{d['leads']}")
        for d in quality["deciles"]
    ]
    cells = {(c["grade"], str(c["band"])): (c["conversion"], c["leads"]) for c in quality["matrix"]}
    bins = [
        (b["mean_predicted"], b["observed"], b["leads"])
        for b in quality["calibration"]["bins"]
        if b["observed"] is not None
    ]
    trend = None
    if backtest is not None:
        weeks = [w["week"] for w in backtest["live"]["mqls_per_week"]]
        trend = charts.lines(
            weeks,
            [
                ("live", [w["mqls"] for w in backtest["live"]["mqls_per_week"]]),
                ("candidate", [w["mqls"] for w in backtest["candidate"]["mqls_per_week"]]),
            ],
            "MQLs per week, live model against the candidate",
        )
    spec = yaml.safe_dump(lf.model.spec, sort_keys=False, allow_unicode=True)
    return render(
        request,
        "model.html",
        status,
        model=lf.model,
        versions=lf.model_versions(),
        predictive=lf.predictive_models(),
        quality=quality,
        outcome=outcome,
        deciles_chart=charts.vbars(deciles, "Conversion by engagement decile", percent=True),
        matrix_chart=charts.heatmap(
            list(GRADES), ["1", "2", "3", "4"], cells, "Conversion by fit grade and engagement band"
        ),
        calibration_chart=charts.calibration(bins, "Calibration of the predicted probability"),
        candidate=candidate if candidate is not None else spec,
        backtest=backtest,
        backtest_chart=trend,
        capacity=capacity,
        error=error,
        stages=FUNNEL[1:],
    )


# --- settings ---------------------------------------------------------------------------
@router.get("/settings")
def settings_page(request: Request) -> HTMLResponse:
    return _settings(request)


def _settings(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
    session = require(request, Permission.COSTS)
    lf = core(request)
    costs = lf.list_costs()
    return render(
        request, "settings.html", status, error=error,
        sources=lf.sources() if session.user.can(Permission.SOURCES) else None,
        users=lf.users() if session.user.can(Permission.USERS) else None,
        reps=[r.name for r in lf.sales_reps()], roles=[r.value for r in Role], costs=costs,
        today=datetime.now(UTC).date(),
        month_end=(datetime.now(UTC).date().replace(day=1) + timedelta(days=32)).replace(day=1),
    )  # fmt: skip


@router.post("/settings/sources")
async def add_source(request: Request) -> Response:
    session = await run_in_threadpool(require, request, Permission.SOURCES)
    form = await form_of(request, session)
    return await run_in_threadpool(_add_source, request, form)


def _add_source(request: Request, form: dict[str, str]) -> Response:
    name = form.get("name", "").strip()
    try:
        if not name:
            raise ValidationError("name: a source needs a name")
        core(request).create_source(name)
    except (ValidationError, Conflict) as exc:
        return _settings(request, exc.message, status_of(exc))
    return redirect("/settings", f"Source {name!r} created.")


@router.post("/settings/users")
async def add_user(request: Request) -> Response:
    session = await run_in_threadpool(require, request, Permission.USERS)
    form = await form_of(request, session)
    return await run_in_threadpool(_add_user, request, form)


def _add_user(request: Request, form: dict[str, str]) -> Response:
    try:
        user = core(request).add_user(
            form.get("email", ""), form.get("password", ""), form.get("role", ""),
            form.get("name", ""), form.get("rep") or None,
        )  # fmt: skip
    except (ValidationError, Conflict, NotFound) as exc:
        return _settings(request, exc.message, status_of(exc))
    return redirect("/settings", f"User {user.email} added as {user.role.value}.")


@router.post("/settings/users/active")
async def user_active(request: Request) -> Response:
    session = await run_in_threadpool(require, request, Permission.USERS)
    form = await form_of(request, session)
    return await run_in_threadpool(_user_active, request, session, form)


def _user_active(request: Request, session: Session, form: dict[str, str]) -> Response:
    email = form.get("email", "")
    active = form.get("active") == "1"
    if not active and email.strip().lower() == session.user.email:
        return _settings(request, "You cannot disable your own account.", 400)
    try:
        core(request).set_user_active(email, active)
    except NotFound as exc:
        return _settings(request, exc.message, status_of(exc))
    return redirect("/settings", f"User {email} {'enabled' if active else 'disabled'}.")


@router.post("/settings/costs")
async def add_cost(request: Request) -> Response:
    session = await run_in_threadpool(require, request, Permission.COSTS)
    form = await form_of(request, session)
    return await run_in_threadpool(_add_cost, request, form)


def _add_cost(request: Request, form: dict[str, str]) -> Response:
    try:
        start = _date_field(form, "period_start")
        end = _date_field(form, "period_end")
        cost = core(request).add_cost(
            form.get("dimension", ""), form.get("name", ""), start, end,
            form.get("amount", ""), form.get("currency") or "USD", form.get("note", ""),
        )  # fmt: skip
    except (ValidationError, Conflict) as exc:
        return _settings(request, exc.message, status_of(exc))
    return redirect("/settings", f"Cost {cost.id} recorded.")


@router.post("/settings/costs/{cost_id}/delete")
async def delete_cost(request: Request, cost_id: int) -> Response:
    session = await run_in_threadpool(require, request, Permission.COSTS)
    await form_of(request, session)
    return await run_in_threadpool(_delete_cost, request, cost_id)


def _delete_cost(request: Request, cost_id: int) -> Response:
    try:
        core(request).delete_cost(cost_id)
    except NotFound as exc:
        return _settings(request, exc.message, status_of(exc))
    return redirect("/settings", f"Cost {cost_id} deleted.")


def _date_field(form: dict[str, str], name: str) -> date:
    raw = form.get(name, "").strip()
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationError(f"{name}: {raw!r} is not a date like 2025-03-01") from None
