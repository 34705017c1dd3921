DROP TABLE scheduled_rounds;
