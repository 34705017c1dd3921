//! A job as it is queued: its kind and its payload's fields, flattened, so the outbox row and
//! the Redis payload read `{"type": "send_invitation", "invitation_id": "…", "delivery": 1}`.
//! Payloads carry ids, never secrets, and are declared by the feature that handles them
//! ([`Payload`]); this crate only moves them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A feature's job: its fields, and the kind that names it on the queue.
pub trait Payload: Serialize + DeserializeOwned + Send + 'static {
    /// Unique among every feature's jobs (the registry refuses a second handler).
    const KIND: &'static str;
}

/// Work to do in the background. Handlers are idempotent: a job may run more than once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    #[serde(rename = "type")]
    kind: String,
    /// The request that queued the job (or queued the job that queued it), for its logs.
    /// Named apart from any payload's own fields (`ProcessSignUp` has a `request_id`).
    #[serde(
        rename = "queued_by_request",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    request_id: Option<uuid::Uuid>,
    /// The span that queued the job (W3C `traceparent`), when traces are exported: the
    /// job's span continues its trace.
    #[serde(
        rename = "queued_in_trace",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    trace_parent: Option<String>,
    #[serde(flatten)]
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Job {
    /// `payload` as a job of its kind, queued by the request in scope
    /// ([`crate::request::current`]).
    pub fn of<P: Payload>(payload: &P) -> Result<Self, serde_json::Error> {
        let serde_json::Value::Object(fields) = serde_json::to_value(payload)? else {
            // A job without fields is an empty braced struct (`struct SyncPlans {}`).
            return Err(serde::ser::Error::custom(format!(
                "the payload of `{}` must serialise as an object",
                P::KIND
            )));
        };
        // The envelope's own names: a payload field under one would be taken for it.
        if let Some(taken) = ["type", "queued_by_request", "queued_in_trace"]
            .into_iter()
            .find(|name| fields.contains_key(*name))
        {
            return Err(serde::ser::Error::custom(format!(
                "the payload of `{}` has a field named `{taken}`, which the job envelope uses",
                P::KIND
            )));
        }
        let origin = crate::request::current();
        Ok(Self {
            kind: P::KIND.to_owned(),
            request_id: origin.as_ref().map(|o| o.request_id),
            trace_parent: origin.and_then(|o| o.trace_parent),
            fields,
        })
    }

    /// What the job is done for: the request that queued it (or queued the job that queued
    /// it), if one did.
    pub fn origin(&self) -> Option<crate::request::Origin> {
        self.request_id.map(|request_id| crate::request::Origin {
            request_id,
            trace_parent: self.trace_parent.clone(),
        })
    }

    /// The kind, for dispatch, logs and metrics.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The payload, read as `P`.
    pub fn payload<P: Payload>(&self) -> Result<P, serde_json::Error> {
        serde_json::from_value(serde_json::Value::Object(self.fields.clone()))
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct SendInvitation {
        invitation_id: Uuid,
        delivery: i32,
    }

    impl Payload for SendInvitation {
        const KIND: &'static str = "send_invitation";
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct SyncPlans {}

    impl Payload for SyncPlans {
        const KIND: &'static str = "sync_plans";
    }

    #[test]
    fn payloads_round_trip_as_tagged_json() {
        let payload = SendInvitation {
            invitation_id: Uuid::nil(),
            delivery: 2,
        };
        let job = Job::of(&payload).expect("serializes");
        let json = serde_json::to_string(&job).expect("serializes");
        assert_eq!(
            json,
            r#"{"type":"send_invitation","delivery":2,"invitation_id":"00000000-0000-0000-0000-000000000000"}"#
        );
        let read: Job = serde_json::from_str(&json).expect("parses");
        assert_eq!(read.kind(), "send_invitation");
        assert_eq!(read.payload::<SendInvitation>().expect("reads"), payload);
    }

    #[tokio::test]
    async fn a_job_queued_inside_a_request_names_it_and_its_trace() {
        let origin = crate::request::Origin {
            request_id: Uuid::from_u128(7),
            trace_parent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        };
        let payload = SendInvitation {
            invitation_id: Uuid::nil(),
            delivery: 1,
        };
        let job = crate::request::scope(origin.clone(), async { Job::of(&payload) })
            .await
            .expect("serializes");
        let json = serde_json::to_value(&job).expect("serializes");
        assert_eq!(json["queued_by_request"], origin.request_id.to_string());
        assert_eq!(
            json["queued_in_trace"],
            serde_json::json!(origin.trace_parent)
        );
        let read: Job = serde_json::from_value(json).expect("parses");
        assert_eq!(read.origin(), Some(origin));
        assert_eq!(read.payload::<SendInvitation>().expect("reads"), payload);
        assert_eq!(Job::of(&payload).expect("serializes").origin(), None);
    }

    #[test]
    fn a_payload_cannot_take_the_envelopes_names() {
        #[derive(Serialize, Deserialize)]
        struct Traced {
            queued_in_trace: String,
        }
        impl Payload for Traced {
            const KIND: &'static str = "traced";
        }
        let taken = Job::of(&Traced {
            queued_in_trace: "mine".into(),
        });
        assert!(taken.is_err());
    }

    #[test]
    fn a_job_without_fields_is_its_kind_alone() {
        let job = Job::of(&SyncPlans {}).expect("serializes");
        assert_eq!(
            serde_json::to_string(&job).expect("serializes"),
            r#"{"type":"sync_plans"}"#
        );
        assert_eq!(job.payload::<SyncPlans>().expect("reads"), SyncPlans {});
    }
}
