//! Scalars of the contract that are ours to describe.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{SecondsFormat, SubsecRound as _, Utc};

/// A point in time as an RFC 3339 string in UTC, to the microsecond, e.g.
/// `2026-11-29T19:40:00.123456Z`. Inputs may carry any offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub chrono::DateTime<Utc>);

/// A point in time as an RFC 3339 string in UTC, to the microsecond, e.g.
/// `2026-11-29T19:40:00.123456Z`. Inputs may carry any offset.
#[Scalar(
    name = "DateTime",
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339"
)]
impl ScalarType for Timestamp {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            // To the microsecond, as PostgreSQL keeps it: a time sent again with nanoseconds
            // is the same time as the one stored.
            Value::String(text) => chrono::DateTime::parse_from_rfc3339(text)
                .map(|at| Timestamp(at.with_timezone(&Utc).trunc_subsecs(6)))
                .map_err(|_| InputValueError::custom("expected an RFC 3339 date-time")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl From<chrono::DateTime<Utc>> for Timestamp {
    fn from(at: chrono::DateTime<Utc>) -> Self {
        Timestamp(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_in_utc() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-29T20:40:00.5+01:00")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(
            Timestamp(at).to_value(),
            Value::String("2026-11-29T19:40:00.500000Z".into())
        );
        let parsed =
            <Timestamp as ScalarType>::parse(Value::String("2026-11-29T19:40:00.500000Z".into()))
                .expect("parses");
        assert_eq!(parsed, Timestamp(at));
        assert!(<Timestamp as ScalarType>::parse(Value::String("yesterday".into())).is_err());
    }
}
