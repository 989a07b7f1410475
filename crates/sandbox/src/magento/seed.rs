//! A new sandbox's data: two websites with store views, the standard customer groups, an
//! admin account, and customers with addresses spread over websites and groups.

use serde_json::json;

use super::store::Store;
use crate::marketo::SandboxError;

const FIRST: &[&str] = &[
    "Veronica", "John", "Mary", "Ahmed", "Yuki", "Olga", "Pierre", "Ana", "Liam", "Chen", "Fatima",
    "Lars", "Priya", "Mateo", "Zoë", "Kwame",
];
const LAST: &[&str] = &[
    "Costello", "Smith", "O'Neil", "Haddad", "Tanaka", "Ivanova", "Dubois", "García", "Murphy",
    "Wei", "Khan", "Nilsen", "Patel", "Rossi", "Brontë", "Mensah",
];
const CITIES: &[(&str, &str, &str, &str)] = &[
    ("Calder", "US", "Michigan", "MI"),
    ("Austin", "US", "Texas", "TX"),
    ("Lyon", "FR", "Rhône", "69"),
    ("Leeds", "GB", "West Yorkshire", "WYK"),
    ("Osaka", "JP", "Osaka", "27"),
];

pub fn magento_time(ms: i64) -> String {
    let at = crate::clock::from_ms(ms);
    at.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .expect("a date-time always formats")
}

pub async fn seed(store: &Store, customers: usize, now_ms: i64) -> Result<(), SandboxError> {
    let mut tx = store.pool.begin().await?;
    sqlx::raw_sql(
        "INSERT INTO websites (id, code, name, default_group_id) VALUES
            (0, 'admin', 'Admin', 0), (1, 'base', 'Main Website', 1), (2, 'wholesale', 'Wholesale Website', 2);
         INSERT INTO stores (id, code, name, website_id, store_group_id, is_active) VALUES
            (0, 'admin', 'Admin', 0, 0, 1), (1, 'default', 'Default Store View', 1, 1, 1),
            (2, 'fr', 'French Store View', 1, 1, 1), (3, 'b2b_en', 'B2B Store View', 2, 2, 1);
         INSERT INTO customer_groups (id, code, tax_class_id, tax_class_name) VALUES
            (0, 'NOT LOGGED IN', 3, 'Retail Customer'), (1, 'General', 3, 'Retail Customer'),
            (2, 'Wholesale', 3, 'Retail Customer'), (3, 'Retailer', 3, 'Retail Customer');
         INSERT INTO admin_roles (id, name, resources) VALUES
            (1, 'Administrators', 'Magento_Backend::all'),
            (2, 'Customer Service', 'Magento_Customer::manage,Magento_Customer::group');",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut address_id = 1;
    for n in 0..customers {
        let first = FIRST[n % FIRST.len()];
        let last = LAST[(n / FIRST.len()) % LAST.len()];
        let email = if n == 0 {
            "roni_cost@example.com".to_string()
        } else {
            format!(
                "{}.{}{}@example.com",
                first.to_lowercase(),
                last.to_lowercase().replace(['\'', 'í', 'ë'], ""),
                n
            )
        };
        // Every fifth customer is in the wholesale website, in the Wholesale group.
        let (website_id, store_id, created_in, group_id) = if n % 5 == 4 {
            (2, 3, "B2B Store View", 2)
        } else {
            (
                1,
                if n % 7 == 3 { 2 } else { 1 },
                "Default Store View",
                [1, 1, 3][n % 3],
            )
        };
        let (city, country, region, region_code) = CITIES[n % CITIES.len()];
        let mut addresses = vec![json!({
            "id": address_id,
            "customer_id": 0,
            "region": {"region_code": region_code, "region": region, "region_id": 0},
            "region_id": 0,
            "country_id": country,
            "street": [format!("{} Main Street", 100 + n)],
            "telephone": format!("(555) 229-{:04}", n % 10_000),
            "postcode": format!("{:05}", 10_000 + n),
            "city": city,
            "firstname": first,
            "lastname": last,
            "default_shipping": true,
            "default_billing": true,
        })];
        address_id += 1;
        if n % 4 == 0 {
            addresses.push(json!({
                "id": address_id,
                "customer_id": 0,
                "region": {"region_code": region_code, "region": region, "region_id": 0},
                "region_id": 0,
                "country_id": country,
                "street": ["1 Warehouse Road", "Unit 4"],
                "telephone": "(555) 000-0000",
                "postcode": "99999",
                "city": city,
                "firstname": first,
                "lastname": last,
            }));
            address_id += 1;
        }
        let created = magento_time(now_ms - (customers - n) as i64 * 3_600_000);
        let mut customer = json!({
            "group_id": group_id,
            "created_at": created,
            "updated_at": created,
            "created_in": created_in,
            "email": email,
            "firstname": first,
            "lastname": last,
            "store_id": store_id,
            "website_id": website_id,
            "addresses": addresses,
            "extension_attributes": {"is_subscribed": n % 2 == 0},
        });
        if n % 3 == 0 {
            customer["dob"] = json!(format!("19{:02}-0{}-1{}", 60 + n % 40, 1 + n % 9, n % 10));
            customer["gender"] = json!(1 + n % 2);
        }
        let id = store.save_customer(&customer, None).await?;
        // Addresses carry their customer's id.
        customer["id"] = json!(id);
        if let Some(list) = customer["addresses"].as_array_mut() {
            for a in list {
                a["customer_id"] = json!(id);
            }
        }
        store.save_customer(&customer, None).await?;
    }
    store
        .set_meta("next_address_id", &address_id.to_string())
        .await?;
    Ok(())
}

/// The sample customer with a password, for customer-token tests and demos.
pub const SAMPLE_CUSTOMER: &str = "roni_cost@example.com";
pub const SAMPLE_CUSTOMER_PASSWORD: &str = "Roni-Cost-2024";
