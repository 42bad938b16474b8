//! Dev login: paste an API key; `viewer` says which project it reads, and the key is stored
//! for that project (several projects' keys can be stored; the header switches between them).

use web_sys::HtmlInputElement;
use yew::prelude::*;
use yew_router::prelude::*;

use crate::account::{Account, AccountAction, AccountsHandle};
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::components::load::ErrorBox;

#[function_component(SignIn)]
pub fn sign_in() -> Html {
    let accounts = use_context::<AccountsHandle>();
    let navigator = use_navigator();
    let route = use_route::<Route>();
    let input = use_node_ref();
    let busy = use_state(|| false);
    let error = use_state(|| None::<ApiError>);

    let on_submit = {
        let input = input.clone();
        let busy = busy.clone();
        let error = error.clone();
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let Some(key) = input
                .cast::<HtmlInputElement>()
                .map(|i| i.value().trim().to_owned())
                .filter(|k| !k.is_empty())
            else {
                error.set(Some(ApiError {
                    message: "paste an API key first".into(),
                    code: None,
                }));
                return;
            };
            let (accounts, navigator, route) = (accounts.clone(), navigator.clone(), route.clone());
            let (busy, error) = (busy.clone(), error.clone());
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                let answer = api::viewer(&key).await;
                busy.set(false);
                match answer {
                    Ok(viewer) if !viewer.scopes.iter().any(|s| s == "read") => {
                        error.set(Some(ApiError {
                            message: format!(
                                "the key `{}` cannot read (scopes: {}); create one with the `read` scope",
                                viewer.key_prefix,
                                viewer.scopes.join(", ")
                            ),
                            code: Some("FORBIDDEN".into()),
                        }));
                    }
                    Ok(viewer) => {
                        error.set(None);
                        if let Some(accounts) = accounts {
                            accounts.dispatch(AccountAction::SignedIn(Account {
                                project_id: viewer.project_id,
                                workspace_id: viewer.workspace_id,
                                key_prefix: viewer.key_prefix,
                                key,
                            }));
                        }
                        if let (Some(Route::SignIn | Route::Home) | None, Some(navigator)) =
                            (route, navigator)
                        {
                            navigator.push(&Route::Traces);
                        }
                    }
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };

    html! {
        <section class="page sign-in">
            <h1>{ "Sign in" }</h1>
            <p>{ "Paste an API key with the " }<code>{ "read" }</code>{ " scope. The local stack \
                prints one at " }<code>{ "spindle up" }</code>{ " (it is also in " }
                <code>{ ".spindle/run/dev-ingest.key" }</code>{ "). The key stays in this \
                browser's local storage." }</p>
            <form onsubmit={on_submit}>
                <input ref={input} id="key-input" data-testid="key-input" type="password"
                    placeholder="spk_…" autocomplete="off" spellcheck="false" />
                <button id="sign-in" data-testid="sign-in" type="submit" disabled={*busy}>
                    { if *busy { "Checking…" } else { "Sign in" } }
                </button>
            </form>
            if let Some(error) = (*error).clone() {
                <ErrorBox {error} />
            }
        </section>
    }
}
