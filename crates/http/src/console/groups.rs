//! `/ui/groups`: every consumer group with its state; `/ui/groups/{group}`: its members and
//! their assignments, each partition's committed offset, end offset and lag, the group's lag
//! over the last hour (`history`), and resetting its offsets on a topic, with a dry run that
//! only shows the plan. The lag table refreshes itself every few seconds (script). Each calls
//! the API's handler of the same action (`crate::groups`).

use super::view::count;
use super::{Frame, chart, html, url_part};
use crate::AppState;
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub(crate) struct GroupRow {
    pub name: String,
    pub link: String,
    pub state: String,
    pub kind: String,
}

#[derive(Template)]
#[template(path = "console/groups.html")]
struct GroupList {
    frame: Frame,
    groups: Vec<GroupRow>,
}

pub(crate) async fn list(State(state): State<Arc<AppState>>) -> Response {
    let mut frame = Frame::new("Consumer groups", "groups");
    let mut groups = Vec::new();
    let mut status = StatusCode::OK;
    match crate::groups::list(State(state)).await {
        Ok(listed) => {
            for g in listed["groups"].as_array().into_iter().flatten() {
                let name = g["group"].as_str().unwrap_or("").to_string();
                groups.push(GroupRow {
                    link: format!("/ui/groups/{}", url_part(&name)),
                    state: g["state"].as_str().unwrap_or("").to_string(),
                    kind: g["type"].as_str().unwrap_or("").to_string(),
                    name,
                });
            }
            groups.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Err(e) => {
            frame.failed(&e);
            status = e.status;
        }
    }
    html(status, &GroupList { frame, groups })
}

pub(crate) struct MemberRow {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub assignment: String,
}

pub(crate) struct LagRow {
    pub topic: String,
    pub partition: i64,
    pub committed: String,
    pub end_offset: String,
    pub lag: String,
    pub member_id: String,
}

/// What a reset did or would do, partition by partition.
pub(crate) struct PlanRow {
    pub partition: i64,
    pub current: String,
    pub new: String,
}

#[derive(Template)]
#[template(path = "console/group.html")]
struct GroupPage {
    frame: Frame,
    base: String,
    state: String,
    protocol: String,
    members: Vec<MemberRow>,
    partitions: Vec<LagRow>,
    total_lag: String,
    topics: Vec<String>,
    chart: String,
    plan: Vec<PlanRow>,
    plan_executed: bool,
}

pub(crate) async fn page(
    State(state): State<Arc<AppState>>,
    Path(group): Path<String>,
) -> Response {
    let frame = Frame::new(format!("Group {group}"), "groups");
    group_page(&state, &group, frame, None).await
}

async fn group_page(
    state: &Arc<AppState>,
    group: &str,
    mut frame: Frame,
    plan: Option<&Value>,
) -> Response {
    let mut page = GroupPage {
        frame: Frame::new("", "groups"),
        base: format!("/ui/groups/{}", url_part(group)),
        state: String::new(),
        protocol: String::new(),
        members: Vec::new(),
        partitions: Vec::new(),
        total_lag: String::new(),
        topics: Vec::new(),
        chart: String::new(),
        plan: plan.map(plan_rows).unwrap_or_default(),
        plan_executed: plan.is_some_and(|p| p["executed"].as_bool() == Some(true)),
    };
    let mut status = StatusCode::OK;
    let path = Ok(Path(group.to_string()));
    match crate::groups::describe(State(state.clone()), path).await {
        Ok(report) => fill(&mut page, &report),
        Err(e) => {
            frame.failed(&e);
            status = e.status;
        }
    }
    let lag = state.history.group_lag(group);
    page.chart = chart::render(
        &format!("Lag of {group}, last hour"),
        &[chart::Line {
            legend: "lag",
            class: "line-lag",
            points: &lag,
        }],
        count,
    );
    page.frame = frame;
    html(status, &page)
}

fn fill(page: &mut GroupPage, report: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    page.state = text(&report["state"]);
    page.protocol = text(&report["protocol"]);
    let members = report["members"].as_array().into_iter().flatten();
    page.members = members
        .map(|m| {
            let assigned = m["assignment"].as_array().into_iter().flatten();
            let assignment: Vec<String> = assigned
                .map(|a| format!("{}-{}", text(&a["topic"]), a["partition"]))
                .collect();
            MemberRow {
                member_id: text(&m["member_id"]),
                client_id: text(&m["client_id"]),
                host: text(&m["host"]),
                assignment: assignment.join(", "),
            }
        })
        .collect();
    let offset = |v: &Value| v.as_i64().map_or("-".to_string(), |n| count(n as f64));
    let mut total = 0;
    let partitions = report["partitions"].as_array().into_iter().flatten();
    for p in partitions {
        total += p["lag"].as_i64().unwrap_or(0);
        let topic = text(&p["topic"]);
        if !page.topics.contains(&topic) {
            page.topics.push(topic.clone());
        }
        page.partitions.push(LagRow {
            topic,
            partition: p["partition"].as_i64().unwrap_or(-1),
            committed: offset(&p["committed_offset"]),
            end_offset: offset(&p["end_offset"]),
            lag: offset(&p["lag"]),
            member_id: text(&p["member_id"]),
        });
    }
    page.total_lag = count(total as f64);
}

fn plan_rows(plan: &Value) -> Vec<PlanRow> {
    let partitions = plan["partitions"].as_array().into_iter().flatten();
    let offset = |v: &Value| v.as_i64().map_or("-".to_string(), |n| n.to_string());
    partitions
        .map(|p| PlanRow {
            partition: p["partition"].as_i64().unwrap_or(-1),
            current: offset(&p["current"]),
            new: offset(&p["new"]),
        })
        .collect()
}

#[derive(Deserialize)]
pub(crate) struct ResetForm {
    topic: String,
    to: String,
    /// Present (a checkbox) for a dry run.
    #[serde(default)]
    dry_run: Option<String>,
}

pub(crate) async fn reset(
    State(state): State<Arc<AppState>>,
    Path(group): Path<String>,
    Form(form): Form<ResetForm>,
) -> Response {
    let dry_run = form.dry_run.is_some();
    let body = json!({"topic": form.topic.trim(), "to": form.to.trim(), "dry_run": dry_run});
    let body = Ok(Bytes::from(body.to_string()));
    let path = Ok(Path(group.clone()));
    let mut frame = Frame::new(format!("Group {group}"), "groups");
    match crate::groups::reset_offsets(State(state.clone()), path, body).await {
        Ok(plan) => {
            frame.notice = Some(if dry_run {
                "Dry run: nothing was committed; the plan is below".into()
            } else {
                "Offsets reset".into()
            });
            group_page(&state, &group, frame, Some(&plan.0)).await
        }
        Err(e) => {
            frame.failed(&e);
            let status = e.status;
            let mut response = group_page(&state, &group, frame, None).await;
            *response.status_mut() = status;
            response
        }
    }
}
