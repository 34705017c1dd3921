//! Hand-written SQL that each connection prepares once and reuses, like the statements
//! diesel's query builder makes.
//!
//! `diesel::sql_query` marks its text unsafe to cache, so every run of it is parsed and
//! planned again, with one more round trip for the prepare. The benchmark measured that on
//! the membership lookup every request makes. A [`StaticSql`] is fixed text with typed binds,
//! so the connection's statement cache keeps it.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::QueryResult;

/// `sql` with its binds; `$n` in the text is the n-th bind (each may appear more than once).
/// Rows load into `QueryableByName` types, as with `sql_query`.
pub struct StaticSql<Binds> {
    sql: &'static str,
    binds: Binds,
    cached: bool,
}

pub fn static_sql<Binds: BindList>(sql: &'static str, binds: Binds) -> StaticSql<Binds> {
    StaticSql {
        sql,
        binds,
        cached: true,
    }
}

impl<Binds> StaticSql<Binds> {
    /// Planned for its binds on every run instead of prepared once: for a statement whose
    /// plan depends on them. A cached statement gets PostgreSQL's generic plan after five
    /// runs, which guesses one row for a time range and sorts where it should hash (the
    /// analytics report: 41 ms planned each time, 57 ms generic, bench/run's busy workspace).
    pub fn planned_each_run(self) -> Self {
        Self {
            cached: false,
            ..self
        }
    }
}

/// One bind value of SQL type `ST`.
pub struct Bind<ST, T> {
    value: T,
    sql_type: PhantomData<ST>,
}

pub fn bind<ST, T>(value: T) -> Bind<ST, T> {
    Bind {
        value,
        sql_type: PhantomData,
    }
}

/// A tuple of [`Bind`]s, addressed by their 1-based `$n`.
pub trait BindList {
    /// Pushes bind `n` (1-based) as the next placeholder.
    fn push<'b>(&'b self, n: usize, out: AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

impl BindList for () {
    fn push<'b>(&'b self, n: usize, _out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        Err(no_such_bind(n))
    }
}

macro_rules! bind_list {
    ($(($n:tt, $name:ident, $ty:ident, $value:ident)),+) => {
        impl<$($name, $ty),+> BindList for ($(Bind<$name, $ty>,)+)
        where
            $(Pg: HasSqlType<$name>, $ty: ToSql<$name, Pg>,)+
        {
            fn push<'b>(&'b self, n: usize, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
                let ($($value,)+) = self;
                $(if n == $n + 1 {
                    return out.push_bind_param::<$name, $ty>(&$value.value);
                })+
                Err(no_such_bind(n))
            }
        }
    };
}

/// [`bind_list!`] for every length from one to sixteen: each list is the one before and
/// one more bind.
macro_rules! bind_lists {
    ([$($done:tt)*]) => {};
    ([$($done:tt)*] $next:tt $($rest:tt)*) => {
        bind_list!($($done,)* $next);
        bind_lists!([$($done)* $next] $($rest)*);
    };
}

bind_lists!([](0, A, TA, a)(1, B, TB, b)(2, C, TC, c)(3, D, TD, d)(
    4, E, TE, e
)(5, F, TF, f)(6, G, TG, g)(7, H, TH, h)(8, I, TI, i)(
    9, J, TJ, j
)(10, K, TK, k)(11, L, TL, l)(12, M, TM, m)(13, N, TN, n)(
    14, O, TO, o
)(15, P, TP, p));

fn no_such_bind(n: usize) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(
        format!("the SQL names ${n}, which has no bind").into(),
    )
}

impl<Binds: BindList> QueryFragment<Pg> for StaticSql<Binds> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if !self.cached {
            out.unsafe_to_cache_prepared();
        }
        let mut rest = self.sql;
        while let Some(dollar) = rest.find('$') {
            let digits = rest[dollar + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - dollar - 1);
            out.push_sql(&rest[..dollar]);
            if digits == 0 {
                out.push_sql("$");
                rest = &rest[dollar + 1..];
                continue;
            }
            let number = &rest[dollar + 1..dollar + 1 + digits];
            let n: usize = number.parse().map_err(|_| {
                diesel::result::Error::QueryBuilderError(format!("${number} is no bind").into())
            })?;
            self.binds.push(n, out.reborrow())?;
            rest = &rest[dollar + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

/// No static id: the statement cache keys these by their text, which is fixed.
impl<Binds> QueryId for StaticSql<Binds> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Binds> Query for StaticSql<Binds> {
    type SqlType = Untyped;
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::query_builder::QueryBuilder;
    use diesel::sql_types::{Integer, Text};

    fn rendered<B: BindList>(query: &StaticSql<B>) -> String {
        let mut builder = diesel::pg::PgQueryBuilder::default();
        query.to_sql(&mut builder, &Pg).expect("renders");
        builder.finish()
    }

    #[test]
    fn placeholders_become_binds_in_order_of_appearance() {
        let query = static_sql(
            "SELECT $2::text WHERE $1 < 3 AND $1 > 0",
            (bind::<Integer, _>(1), bind::<Text, _>("a")),
        );
        assert_eq!(rendered(&query), "SELECT $1::text WHERE $2 < 3 AND $3 > 0");
    }

    #[test]
    fn a_dollar_without_digits_is_text() {
        let query = static_sql("SELECT '$' || $1", (bind::<Text, _>("a"),));
        assert_eq!(rendered(&query), "SELECT '$' || $1");
    }

    #[test]
    fn a_placeholder_without_its_bind_is_an_error() {
        let query = static_sql("SELECT $2", (bind::<Text, _>("a"),));
        let mut builder = diesel::pg::PgQueryBuilder::default();
        assert!(query.to_sql(&mut builder, &Pg).is_err());
    }

    #[test]
    fn the_connection_may_cache_it() {
        let query = static_sql("SELECT $1", (bind::<Text, _>("a"),));
        assert!(query.is_safe_to_cache_prepared(&Pg).expect("checked"));
        assert!(!diesel::sql_query("SELECT 1")
            .is_safe_to_cache_prepared(&Pg)
            .expect("checked"));
        let each_run = static_sql("SELECT $1", (bind::<Text, _>("a"),)).planned_each_run();
        assert!(!each_run.is_safe_to_cache_prepared(&Pg).expect("checked"));
    }
}
