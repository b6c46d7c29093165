//! Small helpers for emitting Rust source.

use proc_macro2::TokenStream;
use quote::quote;

use crate::{CodegenError, Result};

/// Pretty-prints generated tokens, so output is stable whatever rustfmt version is installed.
pub fn format(tokens: TokenStream, source: &str) -> Result<String> {
    let file: syn::File = syn::parse2(tokens).map_err(|e| {
        CodegenError::schema(
            source,
            "generated code",
            format!("generator produced invalid Rust: {e}"),
        )
    })?;
    Ok(prettyplease::unparse(&file))
}

/// `#[doc = "..."]` attributes for a description, one per line.
pub fn docs(text: Option<&str>) -> TokenStream {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return quote!();
    };
    let lines = text.lines().map(|l| format!(" {}", l.trim_end()));
    quote!(#(#[doc = #lines])*)
}

/// A Rust identifier, escaping keywords.
pub fn ident(name: &str) -> syn::Ident {
    syn::parse_str::<syn::Ident>(name)
        .unwrap_or_else(|_| syn::Ident::new_raw(name, proc_macro2::Span::call_site()))
}
