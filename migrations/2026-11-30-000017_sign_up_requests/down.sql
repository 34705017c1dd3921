DROP TABLE sign_up_requests;
