//! Any path the app does not know.

use yew::prelude::*;
use yew_router::prelude::*;

use crate::app::Route;

#[function_component(NotFound)]
pub fn not_found() -> Html {
    html! {
        <section class="page">
            <h1>{ "Not found" }</h1>
            <p>{ "No page lives at this address. " }
                <Link<Route> to={Route::Traces}>{ "Go to the traces" }</Link<Route>></p>
        </section>
    }
}
