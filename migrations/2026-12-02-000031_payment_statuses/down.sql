ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN
    ('pending', 'completed', 'failed', 'cancelled', 'expired', 'refunded'));
