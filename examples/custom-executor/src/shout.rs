//! `shout(text)`: `text` in upper case with a `!` appended. A light, stateless function:
//! a closure registered with `Registry::register_fn`.

use rukong_core::Value;
use rukong_executor::FnError;

/// The name DAGs call it by (`fn: shout`).
pub const NAME: &str = "shout";

/// Inputs are the dependencies' outputs in order, then the task's args: exactly one
/// string here. Anything else is the task's error, never a panic.
pub fn shout(inputs: Vec<Value>) -> Result<Value, FnError> {
    match inputs.as_slice() {
        [Value::Str(text)] => Ok(Value::Str(format!("{}!", text.to_uppercase()))),
        [other] => Err(FnError::new(format!(
            "shout takes a string, got {}",
            other.kind()
        ))),
        _ => Err(FnError::new(format!(
            "shout takes one input, got {}",
            inputs.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shouts_strings_and_refuses_the_rest() {
        assert_eq!(
            shout(vec![Value::Str("héllo".into())]),
            Ok(Value::Str("HÉLLO!".into()))
        );
        assert_eq!(
            shout(vec![Value::Int(1)]).unwrap_err().message,
            "shout takes a string, got int"
        );
        assert!(shout(vec![]).is_err());
    }
}
