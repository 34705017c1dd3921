DROP FUNCTION append_messages(uuid, uuid, uuid[], text[], text[], text[], timestamptz[], int2[],
    timestamptz, int4[], int8[], int8[], timestamptz, text);
DROP FUNCTION workspace_for_writes(uuid, text, timestamptz);
DROP FUNCTION roll_up_conversation_hours(uuid, uuid, text, timestamptz[], int4[], int4[], int4[],
    int4[], int4[], int4[], int8[]);
DROP FUNCTION add_usage(uuid, timestamptz, text[], int4[], int4[]);
