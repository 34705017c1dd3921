//! The email transport, chosen once at start: SMTP when `SMTP_URL` is set, else `.eml`
//! files in `OUTBOX_DIR` for local development.

use std::path::Path;

use anyhow::Context as _;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Email;

#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(AsyncFileTransport<Tokio1Executor>),
}

impl Mailer {
    pub fn new(smtp_url: Option<&str>, outbox_dir: &Path, from: &str) -> anyhow::Result<Self> {
        let from: Mailbox = from.parse().context("MAIL_FROM is not an email address")?;
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("SMTP_URL is not a valid smtp:// URL")?
                    .build(),
            ),
            None => {
                std::fs::create_dir_all(outbox_dir)
                    .with_context(|| format!("cannot create {}", outbox_dir.display()))?;
                Transport::Folder(AsyncFileTransport::new(outbox_dir))
            }
        };
        Ok(Self { from, transport })
    }

    pub async fn send(&self, email: &Email) -> anyhow::Result<()> {
        let message = self.message(email)?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop)?,
            Transport::Folder(folder) => folder.send(message).await.map(drop)?,
        }
        Ok(())
    }

    fn message(&self, email: &Email) -> anyhow::Result<Message> {
        let part = |content_type: ContentType, body: &str| {
            SinglePart::builder()
                .header(content_type)
                .header(ContentTransferEncoding::QuotedPrintable)
                .body(body.to_owned())
        };
        Ok(Message::builder()
            .from(self.from.clone())
            .to(email
                .to
                .parse()
                .context("recipient is not an email address")?)
            .subject(email.subject.clone())
            .multipart(
                MultiPart::alternative()
                    .singlepart(part(ContentType::TEXT_PLAIN, &email.text))
                    .singlepart(part(ContentType::TEXT_HTML, &email.html)),
            )?)
    }
}
