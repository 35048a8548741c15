//! Test messages on a timer (`[[wsb.schedule]]`): each entry sends its message every interval,
//! as STAR's planned self-service "send test messages" would, so a supplier's webhook gets
//! traffic without anyone pressing a button. One task per entry; each stops with the [`Wsb`]
//! (its shutdown, or the last handle dropped). A tick that finds the queue full is skipped and
//! logged, never stored up.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::{Message, Shared, Wsb};

/// One scheduled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Names it in logs and in the message's origin.
    pub name: String,
    /// The first is sent one interval after start.
    pub every: Duration,
    pub message: Message,
}

impl Wsb {
    /// Starts sending `schedules`.
    pub fn schedule(&self, schedules: Vec<Schedule>) {
        for schedule in schedules {
            tracing::info!(
                name = %schedule.name,
                every_ms = schedule.every.as_millis(),
                type_id = schedule.message.type_id,
                "WSB schedule started"
            );
            tokio::spawn(run(Arc::downgrade(&self.shared), self.stopping(), schedule));
        }
    }
}

async fn run(
    shared: std::sync::Weak<Shared>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    schedule: Schedule,
) {
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + schedule.every, schedule.every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut message = schedule.message;
    message.origin = Some(format!("schedule {}", schedule.name));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Err(error) = (Wsb { shared }).send(message.clone()).await {
            tracing::warn!(name = %schedule.name, "scheduled WSB message not sent: {error}");
        }
    }
}
