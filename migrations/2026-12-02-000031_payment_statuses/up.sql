-- No gateway sets a payment `cancelled` or `refunded` (a buyer who leaves the checkout leaves
-- it `pending` until it expires; refunds are not handled yet), so the API does not offer
-- those states. Whoever builds refunds adds the value back with the code that writes it.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'expired'));
