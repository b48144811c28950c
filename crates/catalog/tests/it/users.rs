use catalog::{Error, NewApiToken, NewUser, Role, SESSION_IDLE, SESSION_MAX, Secret};

fn new_user(email: &str, role: Role) -> NewUser {
    NewUser {
        email: email.into(),
        display_name: "Ada Admin".into(),
        password: Secret::new("correct horse battery"),
        role,
    }
}

db_test!(
    async fn users_sign_in_with_email_in_any_case(db) {
        let c = &db.catalog;
        let a = db.account("A").await;
        let u = c.create_user(a, new_user("Ada@Contoso.test", Role::Admin)).await.expect("user");
        assert_eq!(u.role, Role::Admin);
        assert!(u.last_login_at.is_none());
        let signed = c
            .authenticate("ada@CONTOSO.test", &Secret::new("correct horse battery"))
            .await
            .expect("sign in");
        assert_eq!(signed.id, u.id);
        assert_eq!(signed.last_login_at, Some(db.clock_now()));
        assert_eq!(c.list_users(a).await.expect("list").len(), 1);

        // The same email in another case, even in another account, is taken.
        let b = db.account("B").await;
        let dup = c.create_user(b, new_user("ADA@contoso.test", Role::Owner)).await;
        assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    }
);

db_test!(
    async fn wrong_password_unknown_user_and_disabled_user_look_the_same(db) {
        let c = &db.catalog;
        let a = db.account("A").await;
        let u = c.create_user(a, new_user("ada@contoso.test", Role::Owner)).await.expect("user");
        let wrong = c.authenticate("ada@contoso.test", &Secret::new("wrong password!")).await;
        let unknown = c.authenticate("nobody@contoso.test", &Secret::new("correct horse battery")).await;
        assert!(matches!(wrong, Err(Error::InvalidCredentials)), "{wrong:?}");
        assert!(matches!(unknown, Err(Error::InvalidCredentials)), "{unknown:?}");
        c.set_user_disabled(a, u.id, true).await.expect("disable");
        let disabled = c.authenticate("ada@contoso.test", &Secret::new("correct horse battery")).await;
        assert!(matches!(disabled, Err(Error::InvalidCredentials)), "{disabled:?}");
        assert_eq!(
            wrong.expect_err("wrong").to_string(),
            unknown.expect_err("unknown").to_string()
        );
    }
);

db_test!(
    async fn bad_user_input_is_refused(db) {
        let c = &db.catalog;
        let a = db.account("A").await;
        for email in ["", "no-at-sign", "a@b", "two words@x.test", "@x.test"] {
            let r = c.create_user(a, new_user(email, Role::Viewer)).await;
            assert!(matches!(r, Err(Error::InvalidInput(_))), "{email:?}: {r:?}");
        }
        let mut short = new_user("ok@contoso.test", Role::Viewer);
        short.password = Secret::new("short");
        let r = c.create_user(a, short).await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
        let ghost = c.create_user(catalog::AccountId::random(), new_user("g@contoso.test", Role::Viewer)).await;
        assert!(matches!(ghost, Err(Error::NotFound(_))), "{ghost:?}");
    }
);

db_test!(
    async fn sessions_expire_when_idle_or_old_and_can_be_revoked(db) {
        let c = &db.catalog;
        let a = db.account("A").await;
        let u = c.create_user(a, new_user("ada@contoso.test", Role::Operator)).await.expect("user");
        let issued = c.create_session(a, u.id).await.expect("session");
        let token = issued.token.expose().to_string();
        assert_eq!(token.len(), 64);
        let found = c.session_by_token(&token).await.expect("lookup").expect("live");
        assert_eq!(found.user.id, u.id);
        assert_eq!(found.session.csrf_token, issued.session.csrf_token);
        assert!(c.session_by_token("not-a-token").await.expect("lookup").is_none());

        // Activity keeps it alive past the idle limit...
        db.clock.advance(SESSION_IDLE - chrono::Duration::minutes(1));
        assert!(c.session_by_token(&token).await.expect("lookup").is_some());
        db.clock.advance(SESSION_IDLE - chrono::Duration::minutes(1));
        assert!(c.session_by_token(&token).await.expect("lookup").is_some());
        // ...but not past idleness...
        db.clock.advance(SESSION_IDLE + chrono::Duration::minutes(1));
        assert!(c.session_by_token(&token).await.expect("lookup").is_none());

        // ...nor past the absolute limit, however active.
        let second = c.create_session(a, u.id).await.expect("session");
        let t2 = second.token.expose().to_string();
        let mut elapsed = chrono::Duration::zero();
        while elapsed < SESSION_MAX - chrono::Duration::hours(11) {
            db.clock.advance(chrono::Duration::hours(11));
            elapsed += chrono::Duration::hours(11);
            assert!(c.session_by_token(&t2).await.expect("lookup").is_some(), "alive at {elapsed}");
        }
        db.clock.advance(chrono::Duration::hours(11));
        assert!(c.session_by_token(&t2).await.expect("lookup").is_none());

        let third = c.create_session(a, u.id).await.expect("session");
        let t3 = third.token.expose().to_string();
        let b = db.account("B").await;
        assert!(matches!(c.revoke_session(b, third.session.id).await, Err(Error::NotFound(_))));
        assert!(c.session_by_token(&t3).await.expect("lookup").is_some());
        c.revoke_session(a, third.session.id).await.expect("revoke");
        assert!(c.session_by_token(&t3).await.expect("lookup").is_none());

        // Disabling a user ends its sessions.
        let fourth = c.create_session(a, u.id).await.expect("session");
        c.set_user_disabled(a, u.id, true).await.expect("disable");
        assert!(c.session_by_token(fourth.token.expose()).await.expect("lookup").is_none());
        assert!(matches!(c.create_session(a, u.id).await, Err(Error::InvalidCredentials)));
        // A user of another account cannot get a session in this one.
        assert!(matches!(c.create_session(b, u.id).await, Err(Error::NotFound(_))));
    }
);

db_test!(
    async fn api_tokens_are_shown_once_and_stop_when_revoked(db) {
        let c = &db.catalog;
        let a = db.account("A").await;
        let b = db.account("B").await;
        let issued = c
            .create_api_token(a, NewApiToken { name: "ci".into(), role: Role::Operator, created_by: None })
            .await
            .expect("token");
        let plain = issued.plaintext.expose().to_string();
        assert!(plain.starts_with("lb_") && plain.len() == 67, "{plain}");
        assert!(plain.starts_with(&issued.token.prefix));
        assert_eq!(issued.token.prefix.len(), 11);

        let p = c.api_token_principal(&plain).await.expect("lookup").expect("valid");
        assert_eq!(p.token.account_id, a);
        assert_eq!(p.token.role, Role::Operator);
        assert_eq!(p.token.last_used_at, Some(db.clock_now()));
        assert!(c.api_token_principal("lb_nope").await.expect("lookup").is_none());
        assert!(c.api_token_principal(&plain[..60]).await.expect("lookup").is_none());

        let listed = c.list_api_tokens(a).await.expect("list");
        assert_eq!(listed.len(), 1);
        assert!(c.list_api_tokens(b).await.expect("list").is_empty());
        let debug = format!("{listed:?} {issued:?}");
        assert!(!debug.contains(&plain[3..]), "the token leaked into Debug output");

        assert!(matches!(c.revoke_api_token(b, issued.token.id).await, Err(Error::NotFound(_))));
        assert!(c.api_token_principal(&plain).await.expect("lookup").is_some());
        let revoked = c.revoke_api_token(a, issued.token.id).await.expect("revoke");
        assert_eq!(revoked.revoked_at, Some(db.clock_now()));
        assert!(c.api_token_principal(&plain).await.expect("lookup").is_none());

        let empty = c.create_api_token(a, NewApiToken { name: " ".into(), role: Role::Viewer, created_by: None }).await;
        assert!(matches!(empty, Err(Error::InvalidInput(_))), "{empty:?}");
    }
);

#[test]
fn roles_include_the_ones_below() {
    assert!(Role::Owner.includes(Role::Admin));
    assert!(Role::Admin.includes(Role::Operator));
    assert!(Role::Operator.includes(Role::Viewer));
    assert!(!Role::Viewer.includes(Role::Operator));
    assert!(!Role::Operator.includes(Role::Admin));
    assert!(Role::Viewer.includes(Role::Viewer));
}
