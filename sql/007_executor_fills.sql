-- What the venue says about an order beyond "it exists" (docs/real-apis.md): the instrument it
-- went to (1000PEPEUSDT for the coin PEPE), how much actually filled (cumExecQty), the
-- venue's own status word, and when it was sent (an unconfirmed order is looked up until its
-- acceptance deadline, counted from there). Portable SQL: DuckDB runs this file too.

ALTER TABLE executor_orders ADD COLUMN IF NOT EXISTS venue_symbol text;
ALTER TABLE executor_orders ADD COLUMN IF NOT EXISTS filled_qty text;
ALTER TABLE executor_orders ADD COLUMN IF NOT EXISTS venue_status text;
ALTER TABLE executor_orders ADD COLUMN IF NOT EXISTS submitted_at timestamptz;
