//! JSON Feed 1.1 documents, serialized with serde from borrowed data.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::{Document, Entry};
use crate::config::FeedContent;

/// The `version` of every document written.
pub const VERSION: &str = "https://jsonfeed.org/version/1.1";

#[derive(Serialize)]
struct Feed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    language: &'a str,
    authors: [Author<'a>; 1],
    items: Vec<JsonItem<'a>>,
}

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

#[derive(Serialize)]
struct JsonItem<'a> {
    id: &'a str,
    url: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_html: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'a str>,
    date_published: String,
    date_modified: String,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
}

/// Writes one JSON Feed document.
pub fn write(doc: &Document<'_, '_>, out: &mut dyn Write) -> Result<()> {
    let meta = doc.meta;
    let full = meta.content == FeedContent::Full;
    let feed = Feed {
        version: VERSION,
        title: &meta.title,
        home_page_url: &meta.home_url,
        feed_url: &doc.self_url,
        description: &meta.description,
        language: &meta.language,
        authors: [Author {
            name: &meta.author_name,
            url: meta.author_email.as_ref().map(|e| format!("mailto:{e}")),
        }],
        items: doc.entries.iter().map(|e| item(e, full)).collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &feed)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn item<'a>(e: &'a Entry<'_>, full: bool) -> JsonItem<'a> {
    JsonItem {
        id: &e.id,
        url: &e.link,
        title: &e.title,
        content_html: full.then_some(e.html.as_ref()),
        content_text: (!full).then_some(e.summary.as_ref()),
        summary: (full && e.has_description).then_some(e.summary.as_ref()),
        date_published: e.published.to_rfc3339(),
        date_modified: e.updated.to_rfc3339(),
        tags: e.tags,
        language: e.lang,
    }
}
