"""Operations tooling behind `sns-telegram dlq ...` and `sns-telegram publish ...`."""
