//! The settings a Python caller gives a client or a producer, as JSON (seconds for
//! durations), applied to the Rust SDK's builders.

use std::time::Duration;

use credence::{ClientBuilder, Error, ProducerBuilder, Result, RetryPolicy, Transport};
use serde::Deserialize;

/// `credence.RetryConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Retry {
    max_attempts: u32,
    initial_backoff: f64,
    max_backoff: f64,
}

impl Retry {
    fn policy(&self) -> Result<RetryPolicy> {
        if self.max_attempts == 0 {
            return Err(Error::Input(
                "retry.max_attempts: at least 1 (the first attempt)".into(),
            ));
        }
        Ok(RetryPolicy {
            max_attempts: self.max_attempts,
            initial_backoff: secs("retry.initial_backoff", self.initial_backoff)?,
            max_backoff: secs("retry.max_backoff", self.max_backoff)?,
        })
    }
}

/// A number of seconds as a duration, refusing what is not one.
fn secs(name: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        Error::Input(format!(
            "{name}: {s} is not a duration in seconds (finite, not negative)"
        ))
    })
}

/// `credence.Client(...)`'s keyword arguments.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientOptions {
    timeout: Option<f64>,
    connect_timeout: Option<f64>,
    retry: Option<Retry>,
    keep_alive: Option<f64>,
    token: Option<String>,
    ca_certificate: Option<String>,
    tls_domain: Option<String>,
    gzip: Option<bool>,
    max_message_bytes: Option<usize>,
}

impl ClientOptions {
    pub(crate) fn parse(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::Input(format!("client options: {e}")))
    }

    pub(crate) fn apply(self, mut b: ClientBuilder) -> Result<ClientBuilder> {
        if let Some(s) = self.timeout {
            b = b.timeout(secs("timeout", s)?);
        }
        if let Some(s) = self.connect_timeout {
            b = b.connect_timeout(secs("connect_timeout", s)?);
        }
        if let Some(r) = &self.retry {
            b = b.retry(r.policy()?);
        }
        if let Some(s) = self.keep_alive {
            b = b.keep_alive(secs("keep_alive", s)?);
        }
        if let Some(t) = self.token {
            b = b.auth_token(t);
        }
        if let Some(pem) = self.ca_certificate {
            b = b.ca_certificate(pem.into_bytes());
        }
        if let Some(d) = self.tls_domain {
            b = b.tls_domain(d);
        }
        if let Some(on) = self.gzip {
            b = b.gzip(on);
        }
        if let Some(n) = self.max_message_bytes {
            b = b.max_message_bytes(n);
        }
        Ok(b)
    }
}

/// `client.producer(...)`'s keyword arguments.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProducerOptions {
    batch_events: Option<usize>,
    batch_bytes: Option<usize>,
    linger: Option<f64>,
    queue_events: Option<usize>,
    in_flight: Option<usize>,
    stream_batches: Option<usize>,
    retry: Option<Retry>,
    transport: Option<String>,
}

impl ProducerOptions {
    pub(crate) fn parse(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::Input(format!("producer options: {e}")))
    }

    pub(crate) fn apply(self, mut b: ProducerBuilder) -> Result<ProducerBuilder> {
        let positive = |name: &str, n: usize| {
            if n == 0 {
                Err(Error::Input(format!("{name}: at least 1")))
            } else {
                Ok(n)
            }
        };
        if let Some(n) = self.batch_events {
            b = b.batch_events(positive("batch_events", n)?);
        }
        if let Some(n) = self.batch_bytes {
            b = b.batch_bytes(positive("batch_bytes", n)?);
        }
        if let Some(s) = self.linger {
            b = b.linger(secs("linger", s)?);
        }
        if let Some(n) = self.queue_events {
            b = b.queue_events(positive("queue_events", n)?);
        }
        if let Some(n) = self.in_flight {
            b = b.in_flight(positive("in_flight", n)?);
        }
        if let Some(n) = self.stream_batches {
            b = b.stream_batches(positive("stream_batches", n)?);
        }
        if let Some(r) = &self.retry {
            b = b.retry(r.policy()?);
        }
        if let Some(t) = &self.transport {
            b = b.transport(transport(t)?);
        }
        Ok(b)
    }
}

fn transport(name: &str) -> Result<Transport> {
    match name {
        "stream" => Ok(Transport::Stream),
        "unary" => Ok(Transport::Unary),
        other => Err(Error::Input(format!(
            "transport: \"stream\" or \"unary\", not {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_options_and_bad_durations_are_named() {
        let e = ClientOptions::parse(r#"{"timout": 1}"#)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|m| m.contains("unknown field `timout`")),
            "{e:?}"
        );
        let e = secs("linger", -0.5).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("invalid input: linger: -0.5 is not a duration in seconds (finite, not negative)")
        );
        let e = transport("kafka").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("invalid input: transport: \"stream\" or \"unary\", not \"kafka\"")
        );
    }
}
