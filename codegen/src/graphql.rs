//! GraphQL SDL -> async-graphql types and a resolver trait.
//!
//! Rule: on an *entity* type (an object type with an `id: ID!` field), a field whose type is
//! another entity is resolved through the generated `<Name>Resolvers` trait, as is every field
//! of `Query` and `Mutation` and every field that takes arguments. All other fields are plain
//! data on the generated struct (`#[derive(SimpleObject)]`).
//!
//! Supported: object types, input objects, enums, the scalars `ID`, `Int`, `Float`, `String`,
//! `Boolean` and `DateTime` (chrono, UTC), lists, non-null, scalar argument defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use async_graphql_parser::Positioned;
use async_graphql_parser::types::{
    BaseType, FieldDefinition, InputValueDefinition, ServiceDocument, Type, TypeKind,
    TypeSystemDefinition,
};
use async_graphql_value::ConstValue;
use heck::{ToSnakeCase, ToUpperCamelCase};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::rust::{docs, ident};
use crate::{CodegenError, GeneratedFile, Result, layout};

const BUILTIN_SCALARS: [&str; 5] = ["ID", "Int", "Float", "String", "Boolean"];
const CUSTOM_SCALARS: [&str; 1] = ["DateTime"];
/// Directives the generator reads: the GraphQL cost directives (`@cost(weight:)` and
/// `@listSize(slicingArguments:)`), which become each resolved field's complexity, and
/// `@auth(requires: Role!)`, which the generated field checks before its resolver runs.
const DIRECTIVES: [&str; 3] = ["cost", "listSize", "auth"];

fn location(pos: async_graphql_parser::Pos) -> String {
    format!("line {} column {}", pos.line, pos.column)
}

/// Parses an SDL document, reporting syntax errors with their position.
pub fn parse_sdl(source: &Path, text: &str) -> Result<ServiceDocument> {
    async_graphql_parser::parse_schema(text).map_err(|e| {
        let at = e
            .positions()
            .next()
            .map(location)
            .unwrap_or_else(|| "document".to_owned());
        let message = e.to_string();
        CodegenError::schema(
            source,
            at,
            message.lines().next().unwrap_or("syntax error").to_owned(),
        )
    })
}

struct Model<'a> {
    source: &'a Path,
    objects: BTreeMap<String, &'a Positioned<async_graphql_parser::types::TypeDefinition>>,
    entities: BTreeSet<String>,
    query: String,
    mutation: Option<String>,
    subscription: Option<String>,
}

impl Model<'_> {
    fn err(&self, pos: async_graphql_parser::Pos, problem: impl Into<String>) -> CodegenError {
        CodegenError::schema(self.source, location(pos), problem)
    }

    fn is_root(&self, name: &str) -> bool {
        name == self.query || self.mutation.as_deref() == Some(name) || self.is_subscription(name)
    }

    fn is_subscription(&self, name: &str) -> bool {
        self.subscription.as_deref() == Some(name)
    }

    fn is_resolved(&self, parent: &str, field: &FieldDefinition) -> bool {
        self.is_root(parent)
            || !field.arguments.is_empty()
            || (self.entities.contains(parent) && self.entities.contains(named(&field.ty.node)))
    }
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(n) => n.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

/// Generates the crate source for one SDL file; the resolver trait is named after the file.
pub fn generate_module(source: &Path, text: &str) -> Result<String> {
    let doc = parse_sdl(source, text)?;
    let Roots {
        types,
        query,
        mutation,
        subscription,
        declared,
    } = roots_and_types(source, &doc)?;
    let model = model(source, &types, &query, &mutation, &subscription)?;
    check_references(&model, &types, &declared)?;
    let trait_name = format_ident!(
        "{}Resolvers",
        source
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("Schema")
            .to_upper_camel_case()
    );
    let mut items = Vec::new();
    let mut resolvers = ResolverMethods::default();
    // The cost directives the contract declares, declared in the served schema too (with the
    // contract's descriptions), so introspection shows them.
    let directives: Vec<TokenStream> = doc
        .definitions
        .iter()
        .filter_map(|def| match def {
            TypeSystemDefinition::Directive(d) => Some(&d.node),
            _ => None,
        })
        .map(|d| {
            let doc = d
                .description
                .as_ref()
                .map(|text| {
                    let text = text.node.as_str();
                    quote!(#[doc = #text])
                })
                .unwrap_or_default();
            let signature = match d.name.node.as_str() {
                "cost" => quote!(
                    fn cost(weight: i32) {}
                ),
                "auth" => quote!(
                    fn auth(requires: Role) {}
                ),
                _ => quote!(
                    fn listSize(slicing_arguments: Option<Vec<String>>) {}
                ),
            };
            quote! {
                #doc
                #[async_graphql::TypeDirective(location = "FieldDefinition")]
                #[allow(dead_code, non_snake_case)]
                #signature
            }
        })
        .collect();
    let auth_declared = doc
        .definitions
        .iter()
        .any(|def| matches!(def, TypeSystemDefinition::Directive(d) if d.node.name.node == "auth"));
    if auth_declared {
        let roles: Option<Vec<&str>> = types.iter().find_map(|t| match &t.node.kind {
            TypeKind::Enum(e) if t.node.name.node == "Role" => Some(
                e.values
                    .iter()
                    .map(|v| v.node.value.node.as_str())
                    .collect(),
            ),
            _ => None,
        });
        if roles.as_deref() != Some(&["USER", "ADMIN"][..]) {
            return Err(CodegenError::schema(
                source,
                "directive @auth",
                "@auth(requires: Role!) needs an enum Role with the values USER and ADMIN",
            ));
        }
    }
    let authorize = if auth_declared {
        authorize_fn()
    } else {
        quote!()
    };
    // Custom scalars map to library types whose own descriptions would otherwise be printed.
    let scalar_descriptions: Vec<TokenStream> = types
        .iter()
        .filter(|t| matches!(t.node.kind, TypeKind::Scalar))
        .filter_map(|t| {
            let description = t.node.description.as_ref()?.node.clone();
            let ty = named_rust_type(t.node.name.node.as_str());
            Some(quote!(.override_output_type_description::<#ty>(#description)))
        })
        .collect();
    for t in &types {
        items.push(gen_type(&model, t, &trait_name, &mut resolvers)?);
    }
    let ResolverMethods {
        trait_methods,
        erased_methods,
        erased_impls,
    } = resolvers;
    let query_ident = ident(&query);
    // Root types are unit structs: each name serves as the type and as its value.
    let mutation_ty = root_or(&mutation, quote!(async_graphql::EmptyMutation));
    let subscription_ty = root_or(
        &model.subscription,
        quote!(async_graphql::EmptySubscription),
    );
    let sdl_path = format!("../../{}", source.display());
    let trait_doc = " Everything the gateway must resolve: root fields and links between entities.";
    let tokens = quote! {
        /// The SDL this crate was generated from, verbatim.
        pub const SDL: &str = include_str!(#sdl_path);

        #(#items)*

        #[doc = #trait_doc]
        #[async_trait::async_trait]
        pub trait #trait_name: Send + Sync + 'static {
            /// The resolvers' error: a domain error that says its own `extensions` (code ...).
            type Error: async_graphql::ErrorExtensions + Send + Sync;

            #(#trait_methods)*
        }

        /// The resolvers as the generated objects call them: errors already GraphQL errors.
        #[async_trait::async_trait]
        trait Resolve: Send + Sync + 'static {
            #(#erased_methods)*
        }

        #[async_trait::async_trait]
        impl<R: #trait_name> Resolve for R {
            #(#erased_impls)*
        }

        /// The executable schema type.
        pub type Schema = async_graphql::Schema<#query_ident, #mutation_ty, #subscription_ty>;

        /// The schema's types, described as the contract describes them, without resolvers
        /// (enough to print or introspect the schema).
        pub fn schema_types() -> async_graphql::SchemaBuilder<#query_ident, #mutation_ty, #subscription_ty> {
            async_graphql::Schema::build(#query_ident, #mutation_ty, #subscription_ty)
                #(#scalar_descriptions)*
        }

        /// A schema builder with `resolvers` installed; add limits and data, then `finish()`.
        pub fn schema_builder<R: #trait_name>(resolvers: std::sync::Arc<R>) -> async_graphql::SchemaBuilder<#query_ident, #mutation_ty, #subscription_ty> {
            let resolvers: std::sync::Arc<dyn Resolve> = resolvers;
            schema_types().data(resolvers)
        }

        #(#directives)*

        fn resolvers<'a>(ctx: &async_graphql::Context<'a>) -> async_graphql::Result<&'a std::sync::Arc<dyn Resolve>> {
            ctx.data::<std::sync::Arc<dyn Resolve>>()
        }

        #authorize

        /// A nullable field that fails resolves to null, its key kept, with its error listed
        /// under its path (GraphQL spec, "Handling Field Errors"); left to the executor, the
        /// key would be dropped from the response.
        fn null_on_error<T>(
            ctx: &async_graphql::Context<'_>,
            resolved: async_graphql::Result<Option<T>>,
        ) -> async_graphql::Result<Option<T>> {
            match resolved {
                Ok(value) => Ok(value),
                Err(error) => {
                    ctx.add_error(ctx.set_error_path(error.into_server_error(ctx.item.pos)));
                    Ok(None)
                }
            }
        }
    };
    let src = source.display().to_string();
    let body = crate::rust::format(tokens, &src)?;
    Ok(format!("{}{body}", crate::header(&src)))
}

/// The root type named `root`, or `empty` when the document declares none.
fn root_or(root: &Option<String>, empty: TokenStream) -> TokenStream {
    match root {
        Some(name) => {
            let name = ident(name);
            quote!(#name)
        }
        None => empty,
    }
}

/// The check behind `@auth(requires:)`, generated when the SDL declares the directive.
fn authorize_fn() -> TokenStream {
    quote! {
        /// The check of `@auth(requires:)`: the caller the server verified for this request
        /// (request data), with at least `role`; `UNAUTHENTICATED` without one, `FORBIDDEN`
        /// with too small a role.
        fn authorize<'a>(
            ctx: &async_graphql::Context<'a>,
            role: shopmesh_identity::Role,
        ) -> async_graphql::Result<&'a shopmesh_identity::Principal> {
            use async_graphql::ErrorExtensions as _;
            let principal = ctx.data_opt::<shopmesh_identity::Principal>().ok_or_else(|| {
                async_graphql::Error::new(shopmesh_identity::AuthError::Missing.to_string())
                    .extend_with(|_, e| e.set("code", "UNAUTHENTICATED"))
            })?;
            principal.check_role(role).map_err(|forbidden| {
                async_graphql::Error::new(forbidden.0).extend_with(|_, e| e.set("code", "FORBIDDEN"))
            })?;
            Ok(principal)
        }
    }
}

type Definition = Positioned<async_graphql_parser::types::TypeDefinition>;

/// The document's types in order, the root type names, and every declared name.
struct Roots<'a> {
    types: Vec<&'a Definition>,
    query: String,
    mutation: Option<String>,
    subscription: Option<String>,
    declared: BTreeSet<String>,
}

fn roots_and_types<'a>(source: &Path, doc: &'a ServiceDocument) -> Result<Roots<'a>> {
    let mut types = Vec::new();
    let mut query = "Query".to_owned();
    let mut mutation = None;
    let mut subscription = None;
    let mut declared = BTreeSet::new();
    for def in &doc.definitions {
        match def {
            TypeSystemDefinition::Schema(s) => {
                if let Some(q) = &s.node.query {
                    query = q.node.to_string();
                }
                mutation = s.node.mutation.as_ref().map(|m| m.node.to_string());
                subscription = s.node.subscription.as_ref().map(|m| m.node.to_string());
            }
            TypeSystemDefinition::Type(t) => {
                if !declared.insert(t.node.name.node.to_string()) {
                    return Err(CodegenError::schema(
                        source,
                        location(t.pos),
                        format!("type {} is defined twice", t.node.name.node),
                    ));
                }
                types.push(t);
            }
            TypeSystemDefinition::Directive(d) => {
                let name = d.node.name.node.as_str();
                if !DIRECTIVES.contains(&name) {
                    return Err(CodegenError::schema(
                        source,
                        location(d.pos),
                        format!("unsupported directive @{name}: supported are {DIRECTIVES:?}"),
                    ));
                }
            }
        }
    }
    if mutation.is_none() && declared.contains("Mutation") {
        mutation = Some("Mutation".to_owned());
    }
    if subscription.is_none() && declared.contains("Subscription") {
        subscription = Some("Subscription".to_owned());
    }
    Ok(Roots {
        types,
        query,
        mutation,
        subscription,
        declared,
    })
}

/// The model: objects, entities (objects with `id: ID!`) and roots; the query root must exist.
fn model<'a>(
    source: &'a Path,
    types: &[&'a Definition],
    query: &str,
    mutation: &Option<String>,
    subscription: &Option<String>,
) -> Result<Model<'a>> {
    let objects: BTreeMap<_, _> = types
        .iter()
        .filter(|t| matches!(t.node.kind, TypeKind::Object(_)))
        .map(|t| (t.node.name.node.to_string(), *t))
        .collect();
    let entities = objects
        .iter()
        .filter(|(_, t)| match &t.node.kind {
            TypeKind::Object(o) => o
                .fields
                .iter()
                .any(|f| f.node.name.node == "id" && f.node.ty.node.to_string() == "ID!"),
            _ => false,
        })
        .map(|(n, _)| n.clone())
        .collect();
    let model = Model {
        source,
        objects,
        entities,
        query: query.to_owned(),
        mutation: mutation.clone(),
        subscription: subscription.clone(),
    };
    if !model.objects.contains_key(query) {
        return Err(CodegenError::schema(
            source,
            "document",
            format!("no query root type {query}"),
        ));
    }
    if let Some(root) = subscription
        .as_deref()
        .filter(|s| !model.objects.contains_key(*s))
    {
        return Err(CodegenError::schema(
            source,
            "document",
            format!("no subscription root type {root}"),
        ));
    }

    Ok(model)
}

/// Every referenced type exists and every declared one is supported.
fn check_references(
    model: &Model<'_>,
    types: &[&Definition],
    declared: &BTreeSet<String>,
) -> Result<()> {
    for t in types {
        match &t.node.kind {
            TypeKind::Scalar => {
                let name = t.node.name.node.as_str();
                if !CUSTOM_SCALARS.contains(&name) {
                    return Err(model.err(t.pos, format!("unsupported scalar {name}: supported custom scalars are {CUSTOM_SCALARS:?}")));
                }
            }
            TypeKind::Interface(_) => return Err(model.err(t.pos, "unsupported: interfaces")),
            TypeKind::Union(_) => return Err(model.err(t.pos, "unsupported: unions")),
            _ => {}
        }
        let check = |ty: &Positioned<Type>| -> Result<()> {
            let n = named(&ty.node);
            if BUILTIN_SCALARS.contains(&n) || declared.contains(n) {
                Ok(())
            } else {
                Err(model.err(ty.pos, format!("unknown type {n}")))
            }
        };
        match &t.node.kind {
            TypeKind::Object(o) => {
                for f in &o.fields {
                    check(&f.node.ty)?;
                    for a in &f.node.arguments {
                        check(&a.node.ty)?;
                    }
                }
            }
            TypeKind::InputObject(i) => {
                for f in &i.fields {
                    check(&f.node.ty)?;
                }
            }
            _ => {}
        }
    }

    Ok(())
}

/// What the resolver trait, and its GraphQL-error twin, gain from each resolved field.
#[derive(Default)]
struct ResolverMethods {
    trait_methods: Vec<TokenStream>,
    erased_methods: Vec<TokenStream>,
    erased_impls: Vec<TokenStream>,
}

/// The Rust item for one SDL type; resolved fields add their methods to `resolvers`.
fn gen_type(
    model: &Model<'_>,
    t: &Definition,
    trait_name: &syn::Ident,
    resolvers: &mut ResolverMethods,
) -> Result<TokenStream> {
    let ResolverMethods {
        trait_methods,
        erased_methods,
        erased_impls,
    } = resolvers;
    let mut items = Vec::new();
    let name = t.node.name.node.as_str();
    let name_ident = ident(name);
    let doc = docs(t.node.description.as_ref().map(|d| d.node.as_str()));
    match &t.node.kind {
        TypeKind::Scalar => {}
        TypeKind::Enum(e) => {
            let variants = e.values.iter().map(|v| {
                let vdoc = docs(v.node.description.as_ref().map(|d| d.node.as_str()));
                let wire = v.node.value.node.as_str();
                let id = ident(&wire.to_upper_camel_case());
                quote!(#vdoc #[graphql(name = #wire)] #id,)
            });
            let wires: Vec<&str> = e
                .values
                .iter()
                .map(|v| v.node.value.node.as_str())
                .collect();
            let ids: Vec<_> = wires
                .iter()
                .map(|w| ident(&w.to_upper_camel_case()))
                .collect();
            items.push(quote! {
                #doc
                #[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
                #[graphql(name = #name)]
                pub enum #name_ident { #(#variants)* }

                impl #name_ident {
                    /// Every value, in contract order.
                    pub const ALL: &'static [Self] = &[#(Self::#ids),*];
                    /// The GraphQL name.
                    pub const fn as_str(self) -> &'static str { match self { #(Self::#ids => #wires,)* } }
                    /// Parses a GraphQL name.
                    pub fn parse(value: &str) -> Option<Self> { match value { #(#wires => Some(Self::#ids),)* _ => None } }
                }
            });
        }
        TypeKind::InputObject(i) => {
            let fields = i
                .fields
                .iter()
                .map(|f| input_field(model, f))
                .collect::<Result<Vec<_>>>()?;
            items.push(quote! {
                #doc
                #[derive(async_graphql::InputObject, Debug, Clone, PartialEq)]
                #[graphql(name = #name)]
                pub struct #name_ident { #(#fields)* }
            });
        }
        TypeKind::Object(o) => {
            let root = model.is_root(name);
            let mut data_fields = Vec::new();
            let mut resolved = Vec::new();
            for f in &o.fields {
                let fname = f.node.name.node.as_str();
                let rust_name = ident(&fname.to_snake_case());
                let fdoc = docs(f.node.description.as_ref().map(|d| d.node.as_str()));
                let ty = rust_type(&f.node.ty);
                if !model.is_resolved(name, &f.node) {
                    if let Some(d) = f.node.directives.first() {
                        return Err(model.err(
                            d.pos,
                            "directives apply to resolved fields only (data fields cost nothing and are guarded by their parent)",
                        ));
                    }
                    data_fields.push(quote!(#fdoc #[graphql(name = #fname)] pub #rust_name: #ty,));
                    continue;
                }
                let method = format_ident!("{}_{}", name.to_snake_case(), fname.to_snake_case());
                let mut arg_decls = Vec::new();
                let mut arg_names = Vec::new();
                let mut trait_args = Vec::new();
                for a in &f.node.arguments {
                    let (decl, aname, aty) = argument(model, a)?;
                    arg_decls.push(decl);
                    trait_args.push(quote!(#aname: #aty));
                    arg_names.push(aname);
                }
                let parent_arg = if root {
                    quote!()
                } else {
                    quote!(parent: &#name_ident,)
                };
                let parent_call = if root { quote!() } else { quote!(self,) };
                let parent_call_erased = if root { quote!() } else { quote!(parent,) };
                let (guard, applied_auth) = match auth_requirement(model, &f.node)? {
                    Some((role, gql_role)) => {
                        trait_args.insert(0, quote!(principal: &shopmesh_identity::Principal));
                        arg_names.insert(0, format_ident!("principal"));
                        (
                            quote!(let principal = authorize(ctx, shopmesh_identity::Role::#role)?;),
                            quote!(, directive = auth::apply(Role::#gql_role)),
                        )
                    }
                    None => (quote!(), quote!()),
                };
                let trait_doc = format!(" Resolves `{name}.{fname}`.");
                if model.is_subscription(name) {
                    let complexity = complexity(model, &f.node)?;
                    let (stream, methods) = subscription_field(SubscriptionField {
                        trait_name,
                        method: &method,
                        ty: &ty,
                        trait_doc: &trait_doc,
                        trait_args: &trait_args,
                        arg_names: &arg_names,
                    });
                    trait_methods.extend(methods.trait_methods);
                    erased_methods.extend(methods.erased_methods);
                    erased_impls.extend(methods.erased_impls);
                    resolved.push(quote! {
                        #fdoc
                        #[graphql(name = #fname #complexity #applied_auth)]
                        async fn #rust_name(&self, ctx: &async_graphql::Context<'_>, #(#arg_decls),*) -> async_graphql::Result<#stream> {
                            #guard
                            resolvers(ctx)?.#method(ctx, #(#arg_names),*).await
                        }
                    });
                    continue;
                }
                trait_methods.push(quote! {
                    #[doc = #trait_doc]
                    async fn #method(&self, ctx: &async_graphql::Context<'_>, #parent_arg #(#trait_args),*) -> Result<#ty, Self::Error>;
                });
                erased_methods.push(quote! {
                    async fn #method(&self, ctx: &async_graphql::Context<'_>, #parent_arg #(#trait_args),*) -> async_graphql::Result<#ty>;
                });
                erased_impls.push(quote! {
                    async fn #method(&self, ctx: &async_graphql::Context<'_>, #parent_arg #(#trait_args),*) -> async_graphql::Result<#ty> {
                        #trait_name::#method(self, ctx, #parent_call_erased #(#arg_names),*)
                            .await
                            .map_err(|e| async_graphql::ErrorExtensions::extend(&e))
                    }
                });
                let complexity = complexity(model, &f.node)?;
                let body = quote! {
                    #guard
                    resolvers(ctx)?.#method(ctx, #parent_call #(#arg_names),*).await
                };
                let body = if f.node.ty.node.nullable {
                    quote!(null_on_error(ctx, async { #body }.await))
                } else {
                    body
                };
                resolved.push(quote! {
                    #fdoc
                    #[graphql(name = #fname #complexity #applied_auth)]
                    async fn #rust_name(&self, ctx: &async_graphql::Context<'_>, #(#arg_decls),*) -> async_graphql::Result<#ty> {
                        #body
                    }
                });
            }
            if root {
                if !data_fields.is_empty() {
                    return Err(model.err(t.pos, "root types cannot have data fields"));
                }
                if model.is_subscription(name) {
                    items.push(quote! {
                        #doc
                        #[derive(Debug, Default, Clone, Copy)]
                        pub struct #name_ident;

                        // The Subscription macro reads the type's description from the impl.
                        #doc
                        #[async_graphql::Subscription(name = #name)]
                        impl #name_ident { #(#resolved)* }
                    });
                    return Ok(quote!(#(#items)*));
                }
                items.push(quote! {
                    #doc
                    #[derive(Debug, Default, Clone, Copy)]
                    pub struct #name_ident;

                    #[async_graphql::Object(name = #name)]
                    impl #name_ident { #(#resolved)* }
                });
            } else if resolved.is_empty() {
                items.push(quote! {
                    #doc
                    #[derive(async_graphql::SimpleObject, Debug, Clone, PartialEq)]
                    #[graphql(name = #name)]
                    pub struct #name_ident { #(#data_fields)* }
                });
            } else {
                items.push(quote! {
                    #doc
                    #[derive(async_graphql::SimpleObject, Debug, Clone, PartialEq)]
                    #[graphql(name = #name, complex)]
                    pub struct #name_ident { #(#data_fields)* }

                    #[async_graphql::ComplexObject]
                    impl #name_ident { #(#resolved)* }
                });
            }
        }
        TypeKind::Interface(_) | TypeKind::Union(_) => unreachable!("rejected above"),
    }
    Ok(quote!(#(#items)*))
}

/// What one subscription field generates besides its field.
struct SubscriptionField<'a> {
    trait_name: &'a syn::Ident,
    method: &'a syn::Ident,
    ty: &'a TokenStream,
    trait_doc: &'a str,
    trait_args: &'a [TokenStream],
    arg_names: &'a [syn::Ident],
}

/// The stream type a subscription field resolves to, and its resolver trait methods: the
/// resolver answers a stream of events (or refuses to start one); each event may fail on its own.
fn subscription_field(f: SubscriptionField<'_>) -> (TokenStream, ResolverMethods) {
    let SubscriptionField {
        trait_name,
        method,
        ty,
        trait_doc,
        trait_args,
        arg_names,
    } = f;
    let stream = quote!(futures::stream::BoxStream<'static, async_graphql::Result<#ty>>);
    let methods = ResolverMethods {
        trait_methods: vec![quote! {
            #[doc = #trait_doc]
            #[doc = " The stream ends when the subscription does; dropping it must free everything."]
            async fn #method(&self, ctx: &async_graphql::Context<'_>, #(#trait_args),*)
                -> Result<futures::stream::BoxStream<'static, Result<#ty, Self::Error>>, Self::Error>;
        }],
        erased_methods: vec![quote! {
            async fn #method(&self, ctx: &async_graphql::Context<'_>, #(#trait_args),*) -> async_graphql::Result<#stream>;
        }],
        erased_impls: vec![quote! {
            async fn #method(&self, ctx: &async_graphql::Context<'_>, #(#trait_args),*) -> async_graphql::Result<#stream> {
                use futures::StreamExt as _;
                let events = #trait_name::#method(self, ctx, #(#arg_names),*)
                    .await
                    .map_err(|e| async_graphql::ErrorExtensions::extend(&e))?;
                Ok(events
                    .map(|event| event.map_err(|e| async_graphql::ErrorExtensions::extend(&e)))
                    .boxed())
            }
        }],
    };
    (stream, methods)
}

/// The Rust type of a named GraphQL type.
fn named_rust_type(name: &str) -> TokenStream {
    match name {
        "ID" => quote!(async_graphql::ID),
        "Int" => quote!(i32),
        "Float" => quote!(f64),
        "String" => quote!(String),
        "Boolean" => quote!(bool),
        "DateTime" => quote!(chrono::DateTime<chrono::Utc>),
        other => {
            let id = ident(other);
            quote!(#id)
        }
    }
}

fn rust_type(ty: &Positioned<Type>) -> TokenStream {
    fn inner(ty: &Type) -> TokenStream {
        let base = match &ty.base {
            BaseType::Named(n) => named_rust_type(n.as_str()),
            BaseType::List(item) => {
                let item = inner(item);
                quote!(Vec<#item>)
            }
        };
        if ty.nullable {
            quote!(Option<#base>)
        } else {
            base
        }
    }
    inner(&ty.node)
}

fn input_field(model: &Model<'_>, f: &Positioned<InputValueDefinition>) -> Result<TokenStream> {
    let fname = f.node.name.node.as_str();
    let rust_name = ident(&fname.to_snake_case());
    let doc = docs(f.node.description.as_ref().map(|d| d.node.as_str()));
    let ty = rust_type(&f.node.ty);
    let default = default_attr(model, f)?;
    Ok(quote!(#doc #[graphql(name = #fname #default)] pub #rust_name: #ty,))
}

fn default_attr(model: &Model<'_>, f: &Positioned<InputValueDefinition>) -> Result<TokenStream> {
    Ok(match &f.node.default_value {
        None => quote!(),
        Some(v) => match &v.node {
            ConstValue::Number(n) if n.is_i64() => {
                let lit = proc_macro2::Literal::i64_unsuffixed(n.as_i64().unwrap_or_default());
                quote!(, default = #lit)
            }
            ConstValue::Boolean(b) => quote!(, default = #b),
            ConstValue::String(s) => quote!(, default = #s),
            other => return Err(model.err(v.pos, format!("unsupported default value {other}"))),
        },
    })
}

fn argument(
    model: &Model<'_>,
    a: &Positioned<InputValueDefinition>,
) -> Result<(TokenStream, syn::Ident, TokenStream)> {
    let aname = a.node.name.node.as_str();
    let rust_name = ident(&aname.to_snake_case());
    let ty = rust_type(&a.node.ty);
    let default = default_attr(model, a)?;
    let desc = a
        .node
        .description
        .as_ref()
        .map(|d| {
            let d = d.node.as_str();
            quote!(, desc = #d)
        })
        .unwrap_or_default();
    Ok((
        quote!(#[graphql(name = #aname #desc #default)] #rust_name: #ty),
        rust_name,
        ty,
    ))
}

/// The complexity of a resolved field from its cost directives: `weight + child` where
/// `@cost(weight:)` sets the weight (1 without it), and `@listSize(slicingArguments: [a])`
/// multiplies what each element selects by the argument `a`. Empty when neither is present
/// (async-graphql's default: 1 + child). The directives are applied too, so the served schema
/// declares them as the contract does.
fn complexity(model: &Model<'_>, field: &FieldDefinition) -> Result<TokenStream> {
    let mut weight = None;
    let mut slicing = None;
    for d in &field.directives {
        let arg = |name: &str| {
            d.node
                .arguments
                .iter()
                .find(|(n, _)| n.node == name)
                .map(|(_, v)| &v.node)
        };
        match d.node.name.node.as_str() {
            "cost" => match arg("weight") {
                Some(ConstValue::Number(n)) if n.as_u64().is_some() => weight = n.as_u64(),
                _ => return Err(model.err(d.pos, "@cost needs weight: a non-negative Int")),
            },
            "listSize" => match arg("slicingArguments") {
                Some(ConstValue::List(args)) if args.len() == 1 => {
                    let ConstValue::String(a) = &args[0] else {
                        return Err(model.err(d.pos, "slicingArguments holds argument names"));
                    };
                    let takes = field
                        .arguments
                        .iter()
                        .any(|x| x.node.name.node == a.as_str() && named(&x.node.ty.node) == "Int");
                    if !takes {
                        return Err(model.err(d.pos, format!("no Int argument {a} to slice by")));
                    }
                    slicing = Some((a.to_string(), a.to_snake_case()));
                }
                _ => {
                    return Err(
                        model.err(d.pos, "@listSize needs slicingArguments: one argument name")
                    );
                }
            },
            "auth" => {}
            other => {
                return Err(model.err(d.pos, format!("unsupported directive @{other} on a field")));
            }
        }
    }
    if weight.is_none() && slicing.is_none() {
        return Ok(quote!());
    }
    let mut applied = Vec::new();
    if let Some(w) = weight {
        let w =
            i32::try_from(w).map_err(|_| model.err(field.name.pos, "@cost weight is too large"))?;
        applied.push(quote!(, directive = cost::apply(#w)));
    }
    let expr = match &slicing {
        Some((graphql_arg, arg)) => {
            applied
                .push(quote!(, directive = listSize::apply(Some(vec![#graphql_arg.to_owned()]))));
            format!(
                "{} + ({arg}.max(0) as usize).saturating_mul(child_complexity)",
                weight.unwrap_or(1)
            )
        }
        None => format!("{} + child_complexity", weight.unwrap_or(1)),
    };
    Ok(quote!(, complexity = #expr #(#applied)*))
}

/// The role `@auth(requires:)` asks of a field, as the identity role and the SDL's `Role`
/// enum value (`USER` or `ADMIN`), if the field carries the directive.
fn auth_requirement(
    model: &Model<'_>,
    field: &FieldDefinition,
) -> Result<Option<(syn::Ident, syn::Ident)>> {
    let Some(d) = field.directives.iter().find(|d| d.node.name.node == "auth") else {
        return Ok(None);
    };
    let requires = d
        .node
        .arguments
        .iter()
        .find(|(n, _)| n.node == "requires")
        .map(|(_, v)| &v.node);
    match requires {
        Some(ConstValue::Enum(role)) if role == "USER" || role == "ADMIN" => {
            let variant = role.as_str().to_upper_camel_case();
            Ok(Some((
                format_ident!("{variant}"),
                format_ident!("{variant}"),
            )))
        }
        _ => Err(model.err(d.pos, "@auth needs requires: USER or ADMIN")),
    }
}

/// A canonical, order-independent rendering of an SDL document, for checking that the schema
/// the gateway builds prints back to the committed contract. Built-in scalars and directive
/// definitions are left out; types and fields are sorted by name.
pub fn canonical_sdl(source: &Path, text: &str) -> Result<String> {
    let doc = parse_sdl(source, text)?;
    let mut roots = (String::from("Query"), String::from("Mutation"));
    let mut types = BTreeMap::new();
    let desc = |d: &Option<Positioned<String>>| {
        d.as_ref()
            .map(|d| format!(" \"{}\"", d.node.trim().replace('\n', "\\n")))
            .unwrap_or_default()
    };
    let value = |v: &InputValueDefinition| {
        let default = v
            .default_value
            .as_ref()
            .map(|d| format!(" = {}", d.node))
            .unwrap_or_default();
        format!(
            "{}: {}{}{}",
            v.name.node,
            v.ty.node,
            default,
            desc(&v.description)
        )
    };
    for def in &doc.definitions {
        match def {
            TypeSystemDefinition::Schema(s) => {
                if let Some(q) = &s.node.query {
                    roots.0 = q.node.to_string();
                }
                if let Some(m) = &s.node.mutation {
                    roots.1 = m.node.to_string();
                }
            }
            TypeSystemDefinition::Directive(_) => {}
            TypeSystemDefinition::Type(t) => {
                let name = t.node.name.node.to_string();
                let mut lines: Vec<String> = match &t.node.kind {
                    TypeKind::Scalar => {
                        if BUILTIN_SCALARS.contains(&name.as_str()) {
                            continue;
                        }
                        let described = desc(&t.node.description);
                        types.insert(name.clone(), format!("scalar {name}{described}"));
                        continue;
                    }
                    TypeKind::Object(o) => o
                        .fields
                        .iter()
                        .map(|f| {
                            let args: Vec<_> =
                                f.node.arguments.iter().map(|a| value(&a.node)).collect();
                            let args = if args.is_empty() {
                                String::new()
                            } else {
                                format!("({})", args.join(", "))
                            };
                            format!(
                                "  {}{}: {}{}",
                                f.node.name.node,
                                args,
                                f.node.ty.node,
                                desc(&f.node.description)
                            )
                        })
                        .collect(),
                    TypeKind::InputObject(i) => i
                        .fields
                        .iter()
                        .map(|f| format!("  {}", value(&f.node)))
                        .collect(),
                    TypeKind::Enum(e) => e
                        .values
                        .iter()
                        .map(|v| format!("  {}{}", v.node.value.node, desc(&v.node.description)))
                        .collect(),
                    TypeKind::Interface(_) => vec!["  <interface>".into()],
                    TypeKind::Union(u) => u
                        .members
                        .iter()
                        .map(|m| format!("  | {}", m.node))
                        .collect(),
                };
                lines.sort();
                let kind = match &t.node.kind {
                    TypeKind::Object(_) => "type",
                    TypeKind::InputObject(_) => "input",
                    TypeKind::Enum(_) => "enum",
                    TypeKind::Interface(_) => "interface",
                    TypeKind::Union(_) => "union",
                    TypeKind::Scalar => "scalar",
                };
                types.insert(
                    name.clone(),
                    format!(
                        "{kind} {name}{} {{\n{}\n}}",
                        desc(&t.node.description),
                        lines.join("\n")
                    ),
                );
            }
        }
    }
    let mut out = format!("schema {{ query: {} mutation: {} }}\n", roots.0, roots.1);
    for t in types.values() {
        out.push_str(t);
        out.push('\n');
    }
    Ok(out)
}

/// Generates the `graphql` crate's sources from `schema/graphql/*.graphql` (one file).
pub fn generate_crate(root: &Path) -> Result<Vec<GeneratedFile>> {
    let contracts = crate::contracts_in(root, layout::GRAPHQL_DIR, "graphql")?;
    let [rel]: [PathBuf; 1] = contracts.try_into().map_err(|found: Vec<PathBuf>| {
        CodegenError::schema(
            layout::GRAPHQL_DIR,
            "folder",
            format!("expected exactly one .graphql file, found {}", found.len()),
        )
    })?;
    let text = crate::read_contract(root, &rel)?;
    let module = rel
        .file_stem()
        .and_then(|s| s.to_str())
        .map(|s| s.to_snake_case())
        .ok_or_else(|| CodegenError::schema(&rel, "file name", "cannot derive a module name"))?;
    let lib = format!(
        "{}//! Generated GraphQL types and resolver trait, from `{}`.\n\n#[rustfmt::skip]\nmod {module};\npub use {module}::*;\n",
        crate::header(&rel.display().to_string()),
        rel.display()
    );
    let out = Path::new(layout::GRAPHQL_OUT);
    Ok(vec![
        GeneratedFile::text(out.join("lib.rs"), lib),
        GeneratedFile::text(
            out.join(format!("{module}.rs")),
            generate_module(&rel, &text)?,
        ),
    ])
}
