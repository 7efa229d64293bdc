//! `/ui/users`: the SCRAM users with their mechanisms, a form to create a user or set a
//! password, and deleting a user's credentials. Each calls the API's handler of the same
//! action (`crate::users`), so the broker checks the caller's ACLs as for the API.

use super::{Frame, html, see_other, url_part};
use crate::AppState;
use crate::error::ApiError;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub(crate) struct UserRow {
    pub name: String,
    pub mechanisms: String,
    pub delete: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UserList {
    frame: Frame,
    users: Vec<UserRow>,
}

/// What a form that redirected here did (`?done=`), told as a fixed notice.
#[derive(Deserialize, Default)]
pub(crate) struct Done {
    done: Option<String>,
    user: Option<String>,
}

impl Done {
    fn notice(&self) -> Option<String> {
        let user = self.user.as_deref().unwrap_or("");
        Some(match self.done.as_deref()? {
            "set" => format!("Password of {user} set"),
            "deleted" => format!("User {user} deleted"),
            _ => return None,
        })
    }
}

pub(crate) async fn list(State(state): State<Arc<AppState>>, Query(done): Query<Done>) -> Response {
    let mut frame = Frame::new("Users", "users");
    frame.notice = done.notice();
    list_page(&state, frame, StatusCode::OK).await
}

async fn list_page(state: &Arc<AppState>, mut frame: Frame, status: StatusCode) -> Response {
    let mut users = Vec::new();
    let mut status = status;
    match crate::users::list(State(state.clone())).await {
        Ok(listed) => {
            for u in listed["users"].as_array().into_iter().flatten() {
                let name = u["user"].as_str().unwrap_or("").to_string();
                let mechanisms: Vec<String> = u["mechanisms"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let iterations = m["iterations"].as_i64().unwrap_or(0);
                        let mechanism = m["mechanism"].as_str().unwrap_or("");
                        format!("{mechanism} ({iterations} iterations)")
                    })
                    .collect();
                users.push(UserRow {
                    delete: format!("/ui/users/{}/delete", url_part(&name)),
                    mechanisms: mechanisms.join(", "),
                    name,
                });
            }
        }
        Err(e) => {
            frame.failed(&e);
            status = e.status;
        }
    }
    html(status, &UserList { frame, users })
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    name: String,
    password: String,
    mechanism: String,
    #[serde(default)]
    iterations: String,
}

pub(crate) async fn set_password(
    State(state): State<Arc<AppState>>,
    Form(form): Form<PasswordForm>,
) -> Response {
    let name = form.name.trim().to_string();
    let set = async {
        let mut body = json!({"password": form.password, "mechanism": form.mechanism});
        let iterations = form.iterations.trim();
        if !iterations.is_empty() {
            let n: i32 = iterations.parse().map_err(|_| {
                ApiError::bad_request(format!("iterations: {iterations:?} is not a number"))
            })?;
            body["iterations"] = n.into();
        }
        let body = Ok(Bytes::from(body.to_string()));
        crate::users::set_password(State(state.clone()), Ok(Path(name.clone())), body).await
    };
    after(&state, &name, set.await.map(|_| ()), "set").await
}

pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
) -> Response {
    let params = Ok(Query(crate::users::DeleteParams::default()));
    let deleted = crate::users::delete(State(state.clone()), Ok(Path(user.clone())), params).await;
    after(&state, &user, deleted.map(|_| ()), "deleted").await
}

/// After an action on `user`: the list again (a redirect saying what was `done`), or the list
/// with the API's refusal.
async fn after(
    state: &Arc<AppState>,
    user: &str,
    answer: Result<(), ApiError>,
    done: &str,
) -> Response {
    match answer {
        Ok(()) => see_other(&format!("/ui/users?done={done}&user={}", url_part(user))),
        Err(e) => {
            let mut frame = Frame::new("Users", "users");
            frame.failed(&e);
            list_page(state, frame, e.status).await
        }
    }
}
