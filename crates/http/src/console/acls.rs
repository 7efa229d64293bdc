//! `/ui/acls`: the ACLs a filter selects (every one when nothing is named), a form to add one,
//! and a button to remove each. Each calls the API's handler of the same action
//! (`crate::acls`), so the broker checks the caller's ACLs as for the API.

use super::{Frame, html, see_other};
use crate::AppState;
use crate::acls::AclFields;
use crate::api::AclOut;
use crate::error::ApiError;
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use sluice_client::security_admin;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "console/acls.html")]
struct AclPage {
    frame: Frame,
    filter: FilterForm,
    acls: Vec<AclOut>,
    resource_types: Vec<&'static str>,
    operations: Vec<&'static str>,
}

/// The filter of the list (a field left empty selects every value) and what a form that
/// redirected here did (`done`).
#[derive(Deserialize, Default, Clone)]
pub(crate) struct FilterForm {
    #[serde(default)]
    principal: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    resource_name: String,
    #[serde(default)]
    pattern_type: String,
    #[serde(default)]
    done: String,
}

impl FilterForm {
    fn fields(&self) -> AclFields {
        let given = |text: &str| Some(text.trim().to_string()).filter(|t| !t.is_empty());
        AclFields {
            principal: given(&self.principal),
            resource_type: given(&self.resource_type),
            resource_name: given(&self.resource_name),
            pattern_type: given(&self.pattern_type),
            ..AclFields::default()
        }
    }

    fn notice(&self) -> Option<String> {
        match self.done.as_str() {
            "added" => Some("ACL added".into()),
            "removed" => Some("ACL removed".into()),
            _ => None,
        }
    }
}

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<FilterForm>,
) -> Response {
    let mut frame = Frame::new("ACLs", "acls");
    frame.notice = filter.notice();
    list_page(&state, frame, filter, StatusCode::OK).await
}

async fn list_page(
    state: &Arc<AppState>,
    mut frame: Frame,
    filter: FilterForm,
    status: StatusCode,
) -> Response {
    let mut acls = Vec::new();
    let mut status = status;
    match crate::acls::list(State(state.clone()), Ok(Query(filter.fields()))).await {
        Ok(listed) => match serde_json::from_value(listed["acls"].clone()) {
            Ok(found) => acls = found,
            Err(e) => frame.error = Some(format!("the API's answer could not be read: {e}")),
        },
        Err(e) => {
            frame.failed(&e);
            status = e.status;
        }
    }
    let page = AclPage {
        frame,
        filter,
        acls,
        resource_types: security_admin::resource_type_names(),
        operations: security_admin::operation_names(),
    };
    html(status, &page)
}

/// One ACL as a form posts it: every field, exactly (the add form and each row's remove).
#[derive(Deserialize)]
pub(crate) struct AclForm {
    principal: String,
    #[serde(default)]
    host: String,
    resource_type: String,
    #[serde(default)]
    resource_name: String,
    pattern_type: String,
    operation: String,
    permission: String,
}

impl AclForm {
    fn fields(&self) -> AclFields {
        let given = |text: &str| Some(text.trim().to_string()).filter(|t| !t.is_empty());
        AclFields {
            principal: given(&self.principal),
            host: given(&self.host).or_else(|| Some("*".into())),
            resource_type: given(&self.resource_type),
            resource_name: given(&self.resource_name),
            pattern_type: given(&self.pattern_type),
            operation: given(&self.operation),
            permission: given(&self.permission),
        }
    }
}

pub(crate) async fn add(State(state): State<Arc<AppState>>, Form(form): Form<AclForm>) -> Response {
    let body = json!({ "acls": [form.fields()] });
    let added = crate::acls::add(State(state.clone()), Ok(Bytes::from(body.to_string()))).await;
    after(&state, added.map(|_| ()), "added").await
}

/// Removes exactly the ACL of the row: every field named, the host and pattern type too.
pub(crate) async fn remove(
    State(state): State<Arc<AppState>>,
    Form(form): Form<AclForm>,
) -> Response {
    let removed = crate::acls::remove(State(state.clone()), Ok(Query(form.fields()))).await;
    after(&state, removed.map(|_| ()), "removed").await
}

async fn after(state: &Arc<AppState>, answer: Result<(), ApiError>, done: &str) -> Response {
    match answer {
        Ok(()) => see_other(&format!("/ui/acls?done={done}")),
        Err(e) => {
            let mut frame = Frame::new("ACLs", "acls");
            frame.failed(&e);
            list_page(state, frame, FilterForm::default(), e.status).await
        }
    }
}
