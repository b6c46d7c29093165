//! Snapshot tests pin what the generator emits for small fixture contracts, and error tests
//! check that bad contracts give an error naming the file, the place and the problem.

use std::path::{Path, PathBuf};

use shopmesh_codegen::{CodegenError, graphql, openapi, proto};

fn fixture(rel: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    (PathBuf::from(rel), text)
}

fn schema_error(err: CodegenError) -> (String, String, String) {
    match err {
        CodegenError::Schema {
            file,
            location,
            problem,
        } => (file.display().to_string(), location, problem),
        other => panic!("expected a schema error, got {other}"),
    }
}

#[test]
fn openapi_fixture_snapshot() {
    let (rel, text) = fixture("openapi/pets.yaml");
    let api = openapi::parse(&rel, &text).unwrap();
    insta::assert_snapshot!("openapi_pets", openapi::generate_module(&api).unwrap());
}

#[test]
fn graphql_fixture_snapshot() {
    let (rel, text) = fixture("graphql/library.graphql");
    insta::assert_snapshot!(
        "graphql_library",
        graphql::generate_module(&rel, &text).unwrap()
    );
}

#[test]
fn proto_fixture_snapshot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proto/ok");
    let (files, descriptor) =
        proto::compile(&root, &[PathBuf::from("demo/v1/demo.proto")]).unwrap();
    assert!(!descriptor.is_empty());
    insta::assert_snapshot!("proto_demo", files["demo.v1.rs"]);
}

#[test]
fn graphql_entity_rule_decides_resolved_fields() {
    let (rel, text) = fixture("graphql/library.graphql");
    let code = graphql::generate_module(&rel, &text).unwrap();
    // Book is an entity linking to the Author entity: resolved through the trait.
    assert!(code.contains("async fn book_author("), "{code}");
    // Scalars stay plain data.
    assert!(!code.contains("async fn book_title("), "{code}");
    assert!(code.contains("async fn query_books("), "{code}");
    assert!(code.contains("async fn mutation_add_book("), "{code}");
}

#[test]
fn invalid_yaml_names_file_and_line() {
    let err = openapi::parse(
        Path::new("schema/openapi/broken.yaml"),
        "openapi: 3.0.3\ninfo: [unclosed\n",
    )
    .unwrap_err();
    let (file, location, problem) = schema_error(err);
    assert_eq!(file, "schema/openapi/broken.yaml");
    assert!(location.starts_with("line "), "{location}");
    assert!(problem.contains("not a valid OpenAPI"), "{problem}");
}

#[test]
fn unknown_ref_names_the_place() {
    let (rel, text) = fixture("openapi/pets.yaml");
    let text = text.replace(
        "$ref: '#/components/schemas/Kind'",
        "$ref: '#/components/schemas/Species'",
    );
    let (file, location, problem) = schema_error(openapi::parse(&rel, &text).unwrap_err());
    assert_eq!(file, "openapi/pets.yaml");
    assert_eq!(location, "components.schemas.Pet.properties.kind");
    assert!(
        problem.contains("unknown $ref #/components/schemas/Species"),
        "{problem}"
    );
}

#[test]
fn unsupported_type_is_an_error() {
    let (rel, text) = fixture("openapi/pets.yaml");
    let text = text.replace(
        "name: {type: string, minLength: 1, maxLength: 50}",
        "name: {oneOf: [{type: string}, {type: integer}]}",
    );
    let (_, location, problem) = schema_error(openapi::parse(&rel, &text).unwrap_err());
    assert_eq!(location, "components.schemas.Pet.properties.name");
    assert!(problem.contains("unsupported type: oneOf"), "{problem}");
}

#[test]
fn missing_operation_id_is_an_error() {
    let (rel, text) = fixture("openapi/pets.yaml");
    let text = text.replace("      operationId: addPet\n", "");
    let (_, location, problem) = schema_error(openapi::parse(&rel, &text).unwrap_err());
    assert_eq!(location, "paths./pets.post");
    assert!(problem.contains("operationId is required"));
}

/// The response rules that let a problem always map onto a documented status.
#[test]
fn operations_need_one_success_a_500_and_problem_bodies() {
    let (rel, text) = fixture("openapi/pets.yaml");
    let no_500 = text.replacen(
        "        '500':\n          description: Failed.\n          content:\n            application/problem+json:\n              schema: {$ref: '#/components/schemas/Problem'}\n",
        "",
        1,
    );
    let (_, location, problem) = schema_error(openapi::parse(&rel, &no_500).unwrap_err());
    assert_eq!(location, "paths./pets/{id}.get");
    assert!(problem.contains("must document 500"), "{problem}");

    let two_successes = text.replacen(
        "        '404':",
        "        '202':\n          description: Later.\n        '404':",
        1,
    );
    let (_, _, problem) = schema_error(openapi::parse(&rel, &two_successes).unwrap_err());
    assert!(
        problem.contains("exactly one 2xx response, found 2"),
        "{problem}"
    );

    let bare_404 = text.replacen(
        "          description: Missing.\n          content:\n            application/problem+json:\n              schema: {$ref: '#/components/schemas/Problem'}\n",
        "          description: Missing.\n",
        1,
    );
    let (_, location, problem) = schema_error(openapi::parse(&rel, &bare_404).unwrap_err());
    assert_eq!(location, "paths./pets/{id}.get.responses.404");
    assert!(problem.contains("must have a Problem body"), "{problem}");
}

/// `Problem` is generated once and shared, so no contract may give it another shape.
#[test]
fn a_problem_schema_of_another_shape_is_an_error() {
    let (rel, text) = fixture("openapi/pets.yaml");
    let text = text.replace(
        "        instance: {type: string}\n",
        "        instance: {type: string}\n        code: {type: string}\n",
    );
    let (_, location, problem) = schema_error(openapi::parse(&rel, &text).unwrap_err());
    assert_eq!(location, "components.schemas.Problem");
    assert!(problem.contains("shared by every contract"), "{problem}");
}

/// No operation is public by omission: each says who may call it, and a secured one documents
/// the 401 its generated guard answers.
#[test]
fn every_operation_declares_who_may_call_it() {
    let (rel, text) = fixture("openapi/pets.yaml");
    let api = openapi::parse(&rel, &text).unwrap();
    let access: Vec<_> = api
        .operations
        .iter()
        .map(|o| (o.id.as_str(), o.access))
        .collect();
    assert_eq!(
        access,
        [
            (
                "getPet",
                openapi::Access::Bearer {
                    role: openapi::RequiredRole::User
                }
            ),
            ("addPet", openapi::Access::Public)
        ]
    );
    let code = openapi::generate_module(&api).unwrap();
    assert!(
        code.contains("principal: shopmesh_identity::Principal"),
        "the secured method receives the verified caller"
    );
    assert!(
        code.contains("check_role(shopmesh_identity::Role::User)"),
        "a user operation refuses a service's token"
    );
    assert!(
        code.contains("token: &shopmesh_identity::AccessToken"),
        "the client takes a token"
    );

    let silent = text.replace("      security: []\n", "");
    let (_, location, problem) = schema_error(openapi::parse(&rel, &silent).unwrap_err());
    assert_eq!(location, "paths./pets.post");
    assert!(
        problem.contains("declare who may call this operation"),
        "{problem}"
    );

    let no_401 = text.replacen(
        "        '401':\n          description: No valid token.",
        "        '403':\n          description: No valid token.",
        1,
    );
    let (_, _, problem) = schema_error(openapi::parse(&rel, &no_401).unwrap_err());
    assert!(problem.contains("must document 401"), "{problem}");

    let no_403 = text.replacen("        '403':\n", "        '409':\n", 1);
    let (_, _, problem) = schema_error(openapi::parse(&rel, &no_403).unwrap_err());
    assert!(problem.contains("must document 403"), "{problem}");

    let service = text.replace(
        "        - bearerAuth: []\n",
        "        - bearerAuth: []\n      x-required-role: service\n",
    );
    let api = openapi::parse(&rel, &service).unwrap();
    assert_eq!(
        api.operations[0].access,
        openapi::Access::Bearer {
            role: openapi::RequiredRole::Service
        }
    );
    assert!(
        openapi::generate_module(&api)
            .unwrap()
            .contains("check_role(shopmesh_identity::Role::Service)")
    );
    let nobody = text.replace(
        "        - bearerAuth: []\n",
        "        - bearerAuth: []\n      x-required-role: root\n",
    );
    let (_, _, problem) = schema_error(openapi::parse(&rel, &nobody).unwrap_err());
    assert!(problem.contains("`root` is no role"), "{problem}");

    let unknown = text.replace("        - bearerAuth: []", "        - apiKey: []");
    let (_, _, problem) = schema_error(openapi::parse(&rel, &unknown).unwrap_err());
    assert!(problem.contains("exactly `bearerAuth: []`"), "{problem}");

    let role = text.replace(
        "      security: []\n",
        "      security: []\n      x-required-role: admin\n",
    );
    let (_, _, problem) = schema_error(openapi::parse(&rel, &role).unwrap_err());
    assert!(
        problem.contains("x-required-role needs a security requirement"),
        "{problem}"
    );

    let basic = text.replace(
        "{type: http, scheme: bearer, bearerFormat: JWT",
        "{type: http, scheme: basic",
    );
    let (location, problem) = match openapi::parse(&rel, &basic).unwrap_err() {
        CodegenError::Schema {
            location, problem, ..
        } => (location, problem),
        other => panic!("{other}"),
    };
    assert_eq!(location, "components.securitySchemes.bearerAuth");
    assert!(
        problem.contains("only `type: http, scheme: bearer"),
        "{problem}"
    );
}

#[test]
fn a_default_the_generated_model_cannot_apply_is_an_error() {
    let (rel, text) = fixture("openapi/pets.yaml");
    let defaulted = text.replace(
        "        name: {type: string, minLength: 1, maxLength: 50}",
        "        name: {type: string, minLength: 1, maxLength: 50, default: rex}",
    );
    assert_ne!(defaulted, text);
    let (_, _, problem) = schema_error(openapi::parse(&rel, &defaulted).unwrap_err());
    assert!(
        problem.contains("a default on an object property"),
        "{problem}"
    );
}

#[test]
fn x_max_body_bytes_needs_a_documented_413() {
    let (rel, text) = fixture("openapi/pets.yaml");
    let on_get = text.replacen(
        "      security: []\n",
        "      security: []\n      x-max-body-bytes: 1000000\n",
        1,
    );
    assert_ne!(on_get, text);
    let (_, _, problem) = schema_error(openapi::parse(&rel, &on_get).unwrap_err());
    assert!(
        problem.contains("x-max-body-bytes must document 413"),
        "{problem}"
    );
}

#[test]
fn undeclared_path_parameter_is_an_error() {
    let (rel, text) = fixture("openapi/pets.yaml");
    let text = text.replace("/pets/{id}:", "/pets/{petId}:");
    let (_, _, problem) = schema_error(openapi::parse(&rel, &text).unwrap_err());
    assert!(
        problem.contains("path parameter id is not in /pets/{petId}"),
        "{problem}"
    );
}

#[test]
fn graphql_syntax_error_names_position() {
    let (file, location, _) = schema_error(
        graphql::generate_module(
            Path::new("x.graphql"),
            "type Query {\n  a: Int\n  b(: Int\n}\n",
        )
        .unwrap_err(),
    );
    assert_eq!(file, "x.graphql");
    assert!(location.starts_with("line 3"), "{location}");
}

#[test]
fn graphql_unknown_type_is_an_error() {
    let (_, location, problem) = schema_error(
        graphql::generate_module(Path::new("x.graphql"), "type Query {\n  a: Widget\n}\n")
            .unwrap_err(),
    );
    assert!(location.starts_with("line 2"), "{location}");
    assert!(problem.contains("unknown type Widget"), "{problem}");
}

#[test]
fn graphql_unsupported_scalar_is_an_error() {
    let (_, _, problem) = schema_error(
        graphql::generate_module(
            Path::new("x.graphql"),
            "scalar Money\ntype Query {\n  a: Money\n}\n",
        )
        .unwrap_err(),
    );
    assert!(problem.contains("unsupported scalar Money"), "{problem}");
}

#[test]
fn proto_syntax_error_names_file_and_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proto/bad");
    let err = proto::compile(&root, &[PathBuf::from("demo/v1/demo.proto")]).unwrap_err();
    let (file, location, problem) = schema_error(err);
    assert!(file.ends_with("demo/v1/demo.proto"), "{file}");
    assert_eq!(location, "line 5 column 1");
    assert!(problem.contains("Expected \";\""), "{problem}");
}

/// Every gRPC method declares who may call it; the generated table carries it to the guard.
#[test]
fn every_rpc_declares_its_access() {
    let dir = std::env::temp_dir().join(format!("shopmesh-proto-access-{}", std::process::id()));
    let auth =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/proto/shopmesh/auth/v1/auth.proto");
    std::fs::create_dir_all(dir.join("shopmesh/auth/v1")).unwrap();
    std::fs::create_dir_all(dir.join("demo/v1")).unwrap();
    std::fs::copy(&auth, dir.join("shopmesh/auth/v1/auth.proto")).unwrap();
    let demo = |echo_option: &str| {
        format!(
            "syntax = \"proto3\";\npackage demo.v1;\nimport \"shopmesh/auth/v1/auth.proto\";\n\
             service EchoService {{\n\
               rpc Echo(EchoRequest) returns (EchoResponse) {{ {echo_option} }}\n\
               rpc Admin(EchoRequest) returns (EchoResponse) {{ option (shopmesh.auth.v1.access) = ACCESS_ADMIN; }}\n\
               rpc Open(EchoRequest) returns (EchoResponse) {{ option (shopmesh.auth.v1.access) = ACCESS_PUBLIC; }}\n\
             }}\nmessage EchoRequest {{ string text = 1; }}\nmessage EchoResponse {{ string text = 1; }}\n"
        )
    };
    let files = [
        PathBuf::from("shopmesh/auth/v1/auth.proto"),
        PathBuf::from("demo/v1/demo.proto"),
    ];
    std::fs::write(
        dir.join("demo/v1/demo.proto"),
        demo("option (shopmesh.auth.v1.access) = ACCESS_USER;"),
    )
    .unwrap();
    let (_, descriptor) = proto::compile(&dir, &files).unwrap();
    assert_eq!(
        proto::method_access(&descriptor).unwrap(),
        [
            ("/demo.v1.EchoService/Echo".to_owned(), Some("User")),
            ("/demo.v1.EchoService/Admin".to_owned(), Some("Admin")),
            ("/demo.v1.EchoService/Open".to_owned(), None),
        ]
    );
    std::fs::write(dir.join("demo/v1/demo.proto"), demo("")).unwrap();
    let (_, descriptor) = proto::compile(&dir, &files).unwrap();
    let (_, location, problem) = schema_error(proto::method_access(&descriptor).unwrap_err());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(location, "demo/v1/demo.proto: rpc EchoService.Echo");
    assert!(
        problem.contains("option (shopmesh.auth.v1.access)"),
        "{problem}"
    );
}

#[test]
fn canonical_sdl_ignores_order_but_not_meaning() {
    let a = "type Query {\n  b: Int\n  a: String\n}\n";
    let b = "type Query {\n  a: String\n  b: Int\n}\n";
    let c = "type Query {\n  a: String\n  b: Int!\n}\n";
    let canon = |s| graphql::canonical_sdl(Path::new("t.graphql"), s).unwrap();
    assert_eq!(canon(a), canon(b));
    assert_ne!(canon(a), canon(c));
}

#[test]
fn cost_directives_become_field_complexity() {
    let sdl = r#"
directive @cost(weight: Int!) on FIELD_DEFINITION
directive @listSize(slicingArguments: [String!]) on FIELD_DEFINITION
type Query {
  books(first: Int! = 10): [Book!]! @listSize(slicingArguments: ["first"])
  book(id: ID!): Book @cost(weight: 4)
}
type Book {
  id: ID!
  title: String!
}
"#;
    let code = graphql::generate_module(Path::new("x.graphql"), sdl).unwrap();
    assert!(
        code.contains(
            r#"complexity = "1 + (first.max(0) as usize).saturating_mul(child_complexity)""#
        ),
        "{code}"
    );
    assert!(
        code.contains(r#"complexity = "4 + child_complexity""#),
        "{code}"
    );

    let no_such_argument = sdl.replace(r#"["first"]"#, r#"["last"]"#);
    let (_, _, problem) = schema_error(
        graphql::generate_module(Path::new("x.graphql"), &no_such_argument).unwrap_err(),
    );
    assert!(problem.contains("no Int argument last"), "{problem}");

    let other = "directive @tag(name: String) on FIELD_DEFINITION\ntype Query {\n  a: Int\n}\n";
    let (_, _, problem) =
        schema_error(graphql::generate_module(Path::new("x.graphql"), other).unwrap_err());
    assert!(problem.contains("unsupported directive @tag"), "{problem}");
}

/// `@auth(requires:)` becomes a check the generated field runs before its resolver, which
/// then receives the verified caller; a field without it stays public.
#[test]
fn auth_directives_guard_fields_and_hand_resolvers_the_caller() {
    let sdl = "directive @auth(requires: Role!) on FIELD_DEFINITION\n\
               enum Role {\n  USER\n  ADMIN\n}\n\
               type Query {\n  mine: Int @auth(requires: USER)\n  all: Int @auth(requires: ADMIN)\n  open: Int\n}\n";
    let code = graphql::generate_module(Path::new("x.graphql"), sdl).unwrap();
    assert!(
        code.contains("let principal = authorize(ctx, shopmesh_identity::Role::User)?;"),
        "{code}"
    );
    assert!(
        code.contains("authorize(ctx, shopmesh_identity::Role::Admin)?"),
        "{code}"
    );
    assert!(
        code.contains("directive = auth::apply(Role::Admin)"),
        "{code}"
    );
    let open_resolver = code.split("async fn query_open(").nth(1).unwrap();
    assert!(
        !open_resolver
            .split(')')
            .next()
            .unwrap()
            .contains("principal"),
        "a public field's resolver gets no caller: {code}"
    );
    assert!(code.contains("async fn query_mine(\n        &self,\n        ctx: &async_graphql::Context<'_>,\n        principal: &shopmesh_identity::Principal,"), "{code}");

    let unknown_role = sdl.replace(
        "mine: Int @auth(requires: USER)",
        "mine: Int @auth(requires: ROOT)",
    );
    let (_, _, problem) =
        schema_error(graphql::generate_module(Path::new("x.graphql"), &unknown_role).unwrap_err());
    assert!(
        problem.contains("@auth needs requires: USER or ADMIN"),
        "{problem}"
    );

    let no_roles = sdl.replace(
        "enum Role {\n  USER\n  ADMIN\n}\n",
        "enum Role {\n  USER\n}\n",
    );
    let (_, _, problem) =
        schema_error(graphql::generate_module(Path::new("x.graphql"), &no_roles).unwrap_err());
    assert!(
        problem.contains("enum Role with the values USER and ADMIN"),
        "{problem}"
    );
}

/// A state machine on an enum: its transitions become `may_become`, and a machine with a state
/// the enum lacks, a repeated or empty transition, or a state nothing reaches is refused.
#[test]
fn a_state_machine_is_checked_and_generates_its_transition_check() {
    let (rel, text) = fixture("openapi/pets.yaml");
    let with = |machine: &str| {
        text.replace(
            "      enum: [cat, dog]\n",
            &format!("      enum: [cat, dog]\n      x-state-machine:\n{machine}"),
        )
    };
    let good = with(
        "        initial: cat\n        transitions:\n          - {from: cat, to: dog, on: grew up}\n",
    );
    let api = openapi::parse(&rel, &good).unwrap();
    let code = openapi::generate_module(&api).unwrap();
    assert!(
        code.contains("pub const INITIAL: Self = Self::Cat;"),
        "{code}"
    );
    assert!(
        code.contains("(Self::Cat, Self::Dog, \"grew up\")"),
        "{code}"
    );
    assert!(code.contains("pub fn may_become(self, next: Self) -> bool"));
    let machine = api
        .schemas
        .iter()
        .find_map(|s| match s {
            openapi::SchemaDef::Enum {
                machine: Some(m), ..
            } => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        machine.mermaid(),
        "stateDiagram-v2\n    [*] --> cat\n    cat --> dog: grew up\n    dog --> [*]\n"
    );

    for (machine, problem) in [
        (
            "        initial: fish\n        transitions: []\n",
            "`fish` is not one of the enum's values",
        ),
        (
            "        initial: cat\n        transitions:\n          - {from: cat, to: cow, on: x}\n",
            "`cow` is not one of the enum's values",
        ),
        (
            "        initial: cat\n        transitions:\n          - {from: cat, to: cat, on: x}\n",
            "goes nowhere",
        ),
        (
            "        initial: cat\n        transitions:\n          - {from: cat, to: dog, on: x}\n          - {from: cat, to: dog, on: y}\n",
            "declared twice",
        ),
        (
            "        initial: cat\n        transitions: []\n",
            "`dog` cannot be reached from `cat`",
        ),
        (
            "        initial: cat\n        transitions:\n          - {from: cat, to: dog, when: x}\n",
            "unknown field",
        ),
    ] {
        let (_, location, found) = schema_error(openapi::parse(&rel, &with(machine)).unwrap_err());
        assert!(location.ends_with("x-state-machine"), "{location}");
        assert!(found.contains(problem), "{problem}: {found}");
    }
}

/// The README shows every state machine: `gen` draws it between its markers, and a machine
/// whose markers are missing is an error.
#[test]
fn the_readme_must_show_every_state_machine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = shopmesh_codegen::generate_all(&root).unwrap();
    let readme = files
        .iter()
        .find(|f| f.path == Path::new("README.md"))
        .expect("the README is generated");
    let text = String::from_utf8(readme.contents.clone()).unwrap();
    assert!(text.contains("```mermaid\nstateDiagram-v2\n    [*] --> pending\n"));

    let copy = std::env::temp_dir().join(format!("readme-check-{}", std::process::id()));
    for dir in ["schema/openapi", "schema/graphql", "schema/proto"] {
        let from = root.join(dir);
        copy_dir(&from, &copy.join(dir));
    }
    std::fs::write(copy.join("README.md"), "# no diagram here\n").unwrap();
    let err = shopmesh_codegen::generate_all(&copy).unwrap_err();
    let _ = std::fs::remove_dir_all(&copy);
    let (file, location, problem) = schema_error(err);
    assert_eq!(file, "README.md");
    assert!(location.ends_with("orders.yaml#OrderStatus"), "{location}");
    assert!(
        problem.contains("must show this state machine"),
        "{problem}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
