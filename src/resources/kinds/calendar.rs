//! Calendars: where agents book meetings, each in one time zone.

use async_graphql::SimpleObject;
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};

use super::{fields, parts};
use crate::auth::model::UserRow;
use crate::error::{ApiError, ApiResult};
use crate::resources::model::{ResourceRow, Scope};
use crate::resources::{Fields, Kind};

input_and_patch!(
/// A calendar agents book meetings in.
    CalendarInput, CalendarPatch, "a calendar" {
        /// 1-100 characters.
        name: required String,
        /// An IANA time zone such as `Europe/Paris`, or `UTC`.
        time_zone: required String,
    }
);

/// The kind's own fields: stored in `data` and shown to clients as they are.
#[derive(Serialize, Deserialize, Default, SimpleObject)]
pub struct CalendarData {
    /// IANA time zone.
    time_zone: String,
}

node!(
    /// A calendar agents book meetings in.
    Calendar(CalendarData)
);

const TIME_ZONE_AREAS: [&str; 11] = [
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Etc",
    "Europe",
    "Indian",
    "Pacific",
];

/// `UTC` or `Area/Location[/Sub]` with a known IANA area (a shape check: the server ships
/// no time-zone database).
fn time_zone(value: &str) -> ApiResult<String> {
    let zone = value.trim();
    let mut parts = zone.split('/');
    let area = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let well_formed = rest.len() <= 2
        && rest.iter().all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
        });
    let valid =
        zone == "UTC" || (TIME_ZONE_AREAS.contains(&area) && !rest.is_empty() && well_formed);
    if !valid {
        return Err(ApiError::bad_input(
            "`timeZone` must be an IANA time zone such as Europe/Paris, or UTC.",
        ));
    }
    Ok(zone.to_owned())
}

pub struct CalendarKind;

impl Kind for CalendarKind {
    const KIND: &'static str = "calendar";
    const LABEL: &'static str = "Calendar";
    type Input = CalendarInput;
    type Patch = CalendarPatch;
    type Node = Calendar;

    async fn validate(
        _: &mut AsyncPgConnection,
        _: Scope,
        input: &CalendarInput,
    ) -> ApiResult<Fields> {
        let time_zone = time_zone(&input.time_zone)?;
        fields(&input.name, CalendarData { time_zone })
    }

    fn node(row: ResourceRow, created_by: Option<UserRow>) -> Calendar {
        let (common, data) = parts(row, created_by);
        Calendar(common, data)
    }
}

surface!(CalendarKind {
    mutations: CalendarMutation { create_calendar, update_calendar, delete_calendar },
    list: CalendarList { calendars },
    docs: [
        "Creates a calendar.",
        "Replaces a calendar's fields.",
        "Members may delete only what they created; Owners and Admins anything.",
        "The workspace's calendars, oldest first.",
    ],
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_need_an_iana_shape() {
        for good in [
            "UTC",
            "Europe/Paris",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(time_zone(good).is_ok(), "{good}");
        }
        for bad in ["Paris", "Mars/Olympus", "Europe/", "Europe/Par is", ""] {
            assert!(time_zone(bad).is_err(), "{bad}");
        }
    }
}
