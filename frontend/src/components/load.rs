//! A request's three states, the hook that runs one when its inputs change, and how loading
//! and errors look (the server's message and its `extensions.code`).

use std::future::Future;

use yew::prelude::*;

use crate::api::ApiError;

/// Where a request stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Load<T> {
    Loading,
    Loaded(T),
    Failed(ApiError),
}

impl<T> From<Result<T, ApiError>> for Load<T> {
    fn from(result: Result<T, ApiError>) -> Load<T> {
        match result {
            Ok(value) => Load::Loaded(value),
            Err(error) => Load::Failed(error),
        }
    }
}

/// Runs `fetch(deps)` whenever `deps` change; an answer to older deps is dropped.
#[hook]
pub fn use_load<T, D, F, Fut>(deps: D, fetch: F) -> UseStateHandle<Load<T>>
where
    T: 'static,
    D: PartialEq + Clone + 'static,
    F: FnOnce(D) -> Fut + 'static,
    Fut: Future<Output = Result<T, ApiError>> + 'static,
{
    let state = use_state(|| Load::Loading);
    let generation = use_mut_ref(|| 0_u64);
    {
        let state = state.clone();
        use_effect_with(deps, move |deps| {
            *generation.borrow_mut() += 1;
            let mine = *generation.borrow();
            state.set(Load::Loading);
            let request = fetch(deps.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let result = request.await;
                if *generation.borrow() == mine {
                    state.set(result.into());
                }
            });
        });
    }
    state
}

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct ErrorProps {
    pub error: ApiError,
}

/// An error as the API stated it.
#[function_component(ErrorBox)]
pub fn error_box(props: &ErrorProps) -> Html {
    html! {
        <div class="error" data-testid="error" role="alert">
            <strong>{ "Error" }</strong>
            if let Some(code) = &props.error.code {
                <code class="code" data-testid="error-code">{ code }</code>
            }
            <span class="message">{ &props.error.message }</span>
        </div>
    }
}

#[function_component(Loading)]
pub fn loading() -> Html {
    html! { <div class="loading" data-testid="loading">{ "Loading…" }</div> }
}

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct PagerProps {
    pub has_previous: bool,
    pub has_next: bool,
    pub on_previous: Callback<()>,
    pub on_next: Callback<()>,
}

/// "Previous" / "Next" over a cursor stack.
#[function_component(Pager)]
pub fn pager(props: &PagerProps) -> Html {
    let previous = props.on_previous.reform(|_: MouseEvent| ());
    let next = props.on_next.reform(|_: MouseEvent| ());
    html! {
        <div class="pager">
            <button data-testid="page-previous" disabled={!props.has_previous} onclick={previous}>
                { "← Previous" }
            </button>
            <button data-testid="page-next" disabled={!props.has_next} onclick={next}>
                { "Next →" }
            </button>
        </div>
    }
}
