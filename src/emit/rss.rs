//! RSS 2.0 documents through the `rss` crate, with `atom:link` self and RFC 5005 links.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use rss::extension::atom::{AtomExtension, Link};
use rss::extension::Extension;
use rss::{Category, Channel, Guid, Item};

use super::{rfc822, Document, Entry, FH_NAMESPACE};
use crate::config::FeedContent;

/// The RSS content module, declared on `<rss>` whenever `content:encoded` is written.
pub const CONTENT_NAMESPACE: &str = "http://purl.org/rss/1.0/modules/content/";

/// Writes one RSS 2.0 document.
pub fn write(doc: &Document<'_, '_>, out: &mut dyn Write) -> Result<()> {
    let meta = doc.meta;
    let mut links = vec![atom_link(&doc.self_url, "self")];
    if let Some(u) = &doc.history.current {
        links.push(atom_link(u, "current"));
    }
    if let Some(u) = &doc.history.prev_archive {
        links.push(atom_link(u, "prev-archive"));
    }
    if let Some(u) = &doc.history.next_archive {
        links.push(atom_link(u, "next-archive"));
    }
    let mut namespaces = BTreeMap::new();
    let mut extensions = BTreeMap::new();
    let full = meta.content == FeedContent::Full;
    if full {
        // The crate declares it only when some item has content; an empty feed would then
        // differ in its root element from a full one, so it is always declared.
        namespaces.insert("content".to_string(), CONTENT_NAMESPACE.to_string());
    }
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
    let channel = Channel {
        title: meta.title.clone(),
        link: meta.home_url.clone(),
        description: meta.description.clone(),
        language: Some(meta.language.clone()),
        managing_editor: meta
            .author_email
            .as_ref()
            .map(|e| format!("{e} ({})", meta.author_name)),
        pub_date: Some(rfc822(&doc.updated)),
        last_build_date: Some(rfc822(&doc.updated)),
        // No version: a release must not change the bytes of archives already written.
        generator: Some("techshack".into()),
        docs: Some("https://www.rssboard.org/rss-specification".into()),
        items: doc
            .entries
            .iter()
            .enumerate()
            .map(|(n, e)| item(n, e, full))
            .collect(),
        extensions,
        atom_ext: Some(AtomExtension { links }),
        namespaces,
        ..Default::default()
    };
    let mut buf = Vec::with_capacity(16 * 1024);
    channel.pretty_write_to(&mut buf, b' ', 2)?;
    let buf = title_char_refs(&buf);
    let bodies: Vec<&str> = doc.entries.iter().map(|e| e.html.as_ref()).collect();
    super::splice_bodies(&buf, &bodies, false, out)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// The `n`-th item of the document, its content a mark for `splice_bodies`.
fn item(n: usize, e: &Entry<'_>, full: bool) -> Item {
    let permalink = e.id.starts_with("https://") || e.id.starts_with("http://");
    Item {
        title: Some(e.title.to_string()),
        link: Some(e.link.to_string()),
        description: Some(crate::html::escape(&e.summary).into_owned()),
        categories: e
            .tags
            .iter()
            .map(|t| Category {
                name: super::xml_clean(t).into_owned(),
                domain: None,
            })
            .collect(),
        guid: Some(Guid {
            value: e.id.to_string(),
            permalink,
        }),
        pub_date: Some(rfc822(&e.published)),
        content: full.then(|| super::body_mark(n)),
        ..Default::default()
    }
}

fn atom_link(href: &str, rel: &str) -> Link {
    Link {
        href: href.to_string(),
        rel: rel.to_string(),
        mime_type: Some("application/rss+xml".into()),
        ..Default::default()
    }
}

/// Rewrites `&amp;` and `&lt;` inside `<title>` elements as `&#x26;` and `&#x3C;`, the forms
/// the RSS Best Practices Profile asks for (readers differ on whether an RSS title is HTML;
/// with these, both kinds show the character). Text elsewhere and CDATA sections are copied
/// as they are. The input is what `rss` wrote: titles hold text only.
pub fn title_char_refs(xml: &[u8]) -> Vec<u8> {
    const CDATA: &[u8] = b"<![CDATA[";
    const OPEN: &[u8] = b"<title>";
    const CLOSE: &[u8] = b"</title>";
    let mut out = Vec::with_capacity(xml.len() + 256);
    let mut i = 0;
    while i < xml.len() {
        let Some(lt) = memchr::memchr(b'<', &xml[i..]) else {
            out.extend_from_slice(&xml[i..]);
            break;
        };
        out.extend_from_slice(&xml[i..i + lt]);
        i += lt;
        let rest = &xml[i..];
        if rest.starts_with(CDATA) {
            let end = find(rest, b"]]>").map_or(rest.len(), |e| e + 3);
            out.extend_from_slice(&rest[..end]);
            i += end;
        } else if rest.starts_with(OPEN) {
            out.extend_from_slice(OPEN);
            let body = &rest[OPEN.len()..];
            let end = find(body, CLOSE).unwrap_or(body.len());
            let mut j = 0;
            while j < end {
                if body[j..end].starts_with(b"&amp;") {
                    out.extend_from_slice(b"&#x26;");
                    j += 5;
                } else if body[j..end].starts_with(b"&lt;") {
                    out.extend_from_slice(b"&#x3C;");
                    j += 4;
                } else {
                    out.push(body[j]);
                    j += 1;
                }
            }
            i += OPEN.len() + end;
        } else {
            out.push(b'<');
            i += 1;
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}
