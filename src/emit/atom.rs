//! Atom 1.0 documents (RFC 4287) with RFC 5005 archive links, through `atom_syndication`.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use atom_syndication::extension::Extension;
use atom_syndication::{
    Category, Content, Entry as AtomEntry, Feed, Generator, Link, Person, Text, WriteConfig,
};

use super::{Document, Entry, FH_NAMESPACE};
use crate::config::FeedContent;

/// Writes one Atom document.
pub fn write(doc: &Document<'_, '_>, out: &mut dyn Write) -> Result<()> {
    let meta = doc.meta;
    let mut links = vec![
        link(&doc.self_url, "self", Some("application/atom+xml")),
        link(&meta.home_url, "alternate", Some("text/html")),
    ];
    if let Some(u) = &doc.history.current {
        links.push(link(u, "current", Some("application/atom+xml")));
    }
    if let Some(u) = &doc.history.prev_archive {
        links.push(link(u, "prev-archive", Some("application/atom+xml")));
    }
    if let Some(u) = &doc.history.next_archive {
        links.push(link(u, "next-archive", Some("application/atom+xml")));
    }
    let mut namespaces = BTreeMap::new();
    let mut extensions = BTreeMap::new();
    if doc.history.archive {
        namespaces.insert("fh".to_string(), FH_NAMESPACE.to_string());
        let archive = Extension {
            name: "fh:archive".into(),
            ..Default::default()
        };
        extensions.insert(
            "fh".to_string(),
            BTreeMap::from([("archive".to_string(), vec![archive])]),
        );
    }
    let feed = Feed {
        title: Text::plain(meta.title.as_str()),
        id: doc.feed_id.to_string(),
        updated: doc.updated,
        authors: vec![Person {
            name: meta.author_name.clone(),
            email: meta.author_email.clone(),
            uri: None,
            extensions: Default::default(),
        }],
        // No version: a release must not change the bytes of archives already written.
        generator: Some(Generator {
            value: "techshack".into(),
            uri: None,
            version: None,
        }),
        links,
        subtitle: (!meta.description.is_empty()).then(|| Text::plain(meta.description.as_str())),
        entries: doc
            .entries
            .iter()
            .enumerate()
            .map(|(n, e)| entry(n, e, meta.content))
            .collect(),
        extensions,
        namespaces,
        lang: Some(meta.language.clone()),
        ..Default::default()
    };
    let config = WriteConfig {
        write_document_declaration: true,
        indent_size: Some(2),
    };
    let mut buf = Vec::with_capacity(16 * 1024);
    feed.write_with_config(&mut buf, config)?;
    let bodies: Vec<&str> = doc.entries.iter().map(|e| e.html.as_ref()).collect();
    super::splice_bodies(&buf, &bodies, true, out)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// The `n`-th entry of the document, its content a mark for `splice_bodies`.
fn entry(n: usize, e: &Entry<'_>, content: FeedContent) -> AtomEntry {
    let mut links = vec![link(&e.link, "alternate", Some("text/html"))];
    if let Some(r) = &e.related {
        links.push(link(r, "related", Some("text/html")));
    }
    let summary = match content {
        FeedContent::Summary => true,
        FeedContent::Full => e.has_description,
    };
    AtomEntry {
        title: Text::plain(e.title.as_ref()),
        id: e.id.to_string(),
        updated: e.updated,
        published: Some(e.published),
        links,
        categories: e
            .tags
            .iter()
            .map(|t| Category {
                term: super::xml_clean(t).into_owned(),
                scheme: None,
                label: None,
            })
            .collect(),
        summary: summary.then(|| {
            // Escaped text as HTML shows the same in every reader, and a summary that
            // mentions a tag (`</div>`) is not taken for undeclared markup.
            let mut t = Text::html(crate::html::escape(&e.summary).into_owned());
            t.lang = e.lang.map(str::to_string);
            t
        }),
        content: (content == FeedContent::Full).then(|| Content {
            value: Some(super::body_mark(n)),
            content_type: Some("html".into()),
            lang: e.lang.map(str::to_string),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn link(href: &str, rel: &str, mime: Option<&str>) -> Link {
    Link {
        href: href.to_string(),
        rel: rel.to_string(),
        mime_type: mime.map(str::to_string),
        ..Default::default()
    }
}
