DROP TABLE billing_operations;
