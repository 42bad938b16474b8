//! One module per screen. Each page takes the signed-in account; the app remounts pages when
//! the project changes, so a page never mixes two projects' data.

pub mod dashboard;
pub mod not_found;
pub mod session;
pub mod sessions;
pub mod sign_in;
pub mod trace;
pub mod traces;
pub mod users;

use yew::Properties;
use yew_router::history::Location;

use crate::account::Account;

/// The props of a page that needs only the account.
#[derive(Debug, Clone, PartialEq, Properties)]
pub struct PageProps {
    pub account: Account,
}

/// The decoded query pairs of the current URL.
pub fn query_pairs(location: Option<&Location>) -> Vec<(String, String)> {
    location
        .and_then(|l| l.query::<Vec<(String, String)>>().ok())
        .unwrap_or_default()
}
