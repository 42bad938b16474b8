//! The app shell: routes, the accounts context, the header (navigation, project switcher,
//! sign out) and the page each route shows. Without a stored key every route shows the
//! sign-in screen, so a shared link works once the user has signed in.

use yew::prelude::*;
use yew_router::prelude::*;

use crate::account::{AccountAction, Accounts, AccountsHandle};
use crate::pages::{
    dashboard::Dashboard, not_found::NotFound, session::SessionView, sessions::Sessions,
    sign_in::SignIn, trace::TraceView, traces::Traces, users::Users,
};

#[derive(Debug, Clone, PartialEq, Eq, Routable)]
pub enum Route {
    #[at("/")]
    Home,
    #[at("/signin")]
    SignIn,
    #[at("/traces")]
    Traces,
    #[at("/traces/:trace_id")]
    Trace { trace_id: String },
    #[at("/sessions")]
    Sessions,
    #[at("/sessions/:session_id")]
    Session { session_id: String },
    #[at("/users")]
    Users,
    #[at("/dashboard")]
    Dashboard,
    #[not_found]
    #[at("/404")]
    NotFound,
}

#[function_component(App)]
pub fn app() -> Html {
    let accounts = use_reducer(Accounts::load);
    html! {
        <ContextProvider<AccountsHandle> context={accounts}>
            <BrowserRouter>
                <Shell />
            </BrowserRouter>
        </ContextProvider<AccountsHandle>>
    }
}

#[function_component(Shell)]
fn shell() -> Html {
    let Some(accounts) = use_context::<AccountsHandle>() else {
        return html! {};
    };
    let route = use_route::<Route>().unwrap_or(Route::NotFound);
    let content = match (accounts.current().cloned(), route) {
        (None, _) | (Some(_), Route::SignIn) => html! { <SignIn /> },
        (Some(account), route) => {
            let key = account.project_id.clone();
            match route {
                Route::Home => html! { <Redirect<Route> to={Route::Traces} /> },
                Route::Traces => html! { <Traces {key} {account} /> },
                Route::Trace { trace_id } => html! { <TraceView {key} {account} {trace_id} /> },
                Route::Sessions => html! { <Sessions {key} {account} /> },
                Route::Session { session_id } => {
                    html! { <SessionView {key} {account} {session_id} /> }
                }
                Route::Users => html! { <Users {key} {account} /> },
                Route::Dashboard => html! { <Dashboard {key} {account} /> },
                Route::SignIn | Route::NotFound => html! { <NotFound /> },
            }
        }
    };
    html! {
        <>
            <Header />
            <main id="content">{ content }</main>
        </>
    }
}

#[function_component(Header)]
fn header() -> Html {
    let Some(accounts) = use_context::<AccountsHandle>() else {
        return html! {};
    };
    let navigator = use_navigator();
    let route = use_route::<Route>();
    let switcher = use_node_ref();
    // An option's `selected` attribute stops counting once the user picked another option, so
    // the current project is set on the element after every render.
    {
        let (switcher, project) = (switcher.clone(), accounts.current.clone());
        use_effect(move || {
            if let (Some(select), Some(project)) =
                (switcher.cast::<web_sys::HtmlSelectElement>(), project)
            {
                select.set_value(&project);
            }
        });
    }
    let Some(current) = accounts.current().cloned() else {
        return html! {
            <header class="topbar"><span class="brand">{ "Spindle" }</span></header>
        };
    };
    let on_switch = {
        let accounts = accounts.clone();
        let navigator = navigator.clone();
        Callback::from(move |event: Event| {
            let Some(select) = event.target_dyn_into::<web_sys::HtmlSelectElement>() else {
                return;
            };
            let value = select.value();
            if value == "+" {
                if let Some(navigator) = &navigator {
                    navigator.push(&Route::SignIn);
                }
            } else {
                accounts.dispatch(AccountAction::Switch(value));
                // Ids of one project mean nothing in another: back to the lists.
                if let Some(navigator) = &navigator {
                    navigator.push(&Route::Traces);
                }
            }
        })
    };
    let on_sign_out = {
        let accounts = accounts.clone();
        Callback::from(move |_: MouseEvent| accounts.dispatch(AccountAction::SignOut))
    };
    let link = |to: Route, label: &'static str, id: &'static str| {
        let active = match (&route, &to) {
            (Some(Route::Trace { .. }), Route::Traces) => true,
            (Some(Route::Session { .. }), Route::Sessions) => true,
            (Some(current), to) => current == to,
            (None, _) => false,
        };
        html! {
            <Link<Route> {to} classes={classes!("nav", active.then_some("active"))}>
                <span id={id}>{ label }</span>
            </Link<Route>>
        }
    };
    html! {
        <header class="topbar">
            <span class="brand">{ "Spindle" }</span>
            <nav>
                { link(Route::Traces, "Traces", "nav-traces") }
                { link(Route::Sessions, "Sessions", "nav-sessions") }
                { link(Route::Users, "Users", "nav-users") }
                { link(Route::Dashboard, "Dashboard", "nav-dashboard") }
            </nav>
            <span class="spacer" />
            <label class="switcher">
                { "Project " }
                <select ref={switcher} data-testid="project-switcher" onchange={on_switch}>
                    { for accounts.list.iter().map(|a| html! {
                        <option value={a.project_id.clone()}
                            selected={a.project_id == current.project_id}>
                            { format!("{} ({})", a.project_id, a.key_prefix) }
                        </option>
                    }) }
                    <option value="+">{ "Add a key…" }</option>
                </select>
            </label>
            <button class="link" data-testid="sign-out" onclick={on_sign_out}>{ "Sign out" }</button>
        </header>
    }
}
