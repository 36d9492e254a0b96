//! AUTH LOGIN (draft-murchison-sasl-login): the user name, then the password, each asked for in turn.
//!
//! Each is asked for by a fixed challenge; the mechanism Outlook, many
//! phones and older clients use.

use super::{Exchange, Outcome};

/// The challenges the draft's servers send (clients ignore their text, but
/// some compare it).
const USERNAME: &[u8] = b"Username:";
const PASSWORD: &[u8] = b"Password:";

/// Where a LOGIN exchange is.
pub enum Login {
    /// Waiting for the user name.
    User,
    /// Waiting for this user's password.
    Password(String),
}

/// Starts LOGIN; an initial response is the user name (curl sends one).
/// An empty one is taken as none.
pub fn start(initial: Option<Vec<u8>>) -> (Option<Exchange>, Outcome) {
    match initial {
        Some(user) if !user.is_empty() => step(Login::User, &user),
        _ => (Some(Exchange::Login(Login::User)), Outcome::Challenge(USERNAME.to_vec())),
    }
}

/// Feeds the client's decoded response.
pub fn step(state: Login, data: &[u8]) -> (Option<Exchange>, Outcome) {
    match state {
        Login::User => match std::str::from_utf8(data) {
            Ok(user) if !user.is_empty() => {
                (Some(Exchange::Login(Login::Password(user.to_string()))), Outcome::Challenge(PASSWORD.to_vec()))
            }
            _ => (None, Outcome::Failure("malformed LOGIN user name")),
        },
        Login::Password(user) => (None, Outcome::CheckPassword { user, password: data.to_vec() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_then_password_with_and_without_initial_response() {
        let (ex, o) = start(None);
        assert!(matches!(o, Outcome::Challenge(ref c) if c == b"Username:"));
        let Some(Exchange::Login(state)) = ex else { panic!("no exchange") };
        let (ex, o) = step(state, b"alice");
        assert!(matches!(o, Outcome::Challenge(ref c) if c == b"Password:"));
        let Some(Exchange::Login(state)) = ex else { panic!("no exchange") };
        let (ex, o) = step(state, b"pass word");
        assert!(ex.is_none());
        assert!(
            matches!(o, Outcome::CheckPassword { ref user, ref password } if user == "alice" && password == b"pass word")
        );
        let (ex, o) = start(Some(b"bob".to_vec()));
        assert!(matches!(ex, Some(Exchange::Login(Login::Password(ref u))) if u == "bob"));
        assert!(matches!(o, Outcome::Challenge(ref c) if c == b"Password:"));
        let (_, o) = start(Some(Vec::new()));
        assert!(matches!(o, Outcome::Challenge(ref c) if c == b"Username:"), "empty initial response: asked");
        let (ex, o) = step(Login::User, b"\xff");
        assert!(ex.is_none() && matches!(o, Outcome::Failure(_)));
    }
}
